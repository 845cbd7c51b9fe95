"""svclab's built-in files, as packages: ``svclab.builtin.labs`` is the top-level labs/ folder and
``svclab.builtin.manifests`` the top-level manifests/ folder (see svclab/resources.py)."""
