"""Networks behind a registry: 3D DynUNet (default) and a 2D PIPO-FAN-style net."""
