"""Local console for Notiflow runs."""
