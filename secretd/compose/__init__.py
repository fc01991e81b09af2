"""``secretd compose``: Docker Compose runs the project, secretd fills its secrets.

``model.py`` reads the project with the real compose (also used by runtime/swarm.py).
"""
