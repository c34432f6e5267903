"""Image quantification steps between reading and kinetics.

Submodules (import them directly; nothing is re-exported here so that importing
one does not load the others):

``partial_volume``
    Recovery coefficients and geometric-transfer-matrix correction.
``register``
    Rigid and deformable registration of time points (SimpleITK).
``segment``
    CT tissue classes and densities, threshold lesions.
"""
