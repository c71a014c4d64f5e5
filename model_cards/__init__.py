"""Model-card templates, one per method; shipped inside the wheel as the package ``hf_mim.model_cards``."""
