"""The local demo (`make run`) and the scripted webhook receiver it delivers to."""
