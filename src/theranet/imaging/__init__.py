"""Image quantification steps between reading and kinetics or decisions.

Submodules (import them directly; nothing is re-exported here so that importing
one does not load the others):

``conjugate_view``
    Planar conjugate-view activity quantification (MIRD Pamphlet 16): geometric
    mean, TEW/DEW scatter, CT transmission, self-attenuation, background and
    overlap correction.
``lesions``
    Lesion detection and measurement on diagnostic PET/SPECT (liver-relative
    threshold, physiological-uptake organs excluded, SUV/TLR/TSR, site).
``partial_volume``
    Recovery coefficients and geometric-transfer-matrix correction.
``register``
    Rigid and deformable registration of time points (SimpleITK).
``score``
    Krenning-equivalent grade, SSTR PET ratios, NETPET dual-tracer grade, MIBG
    extent scores (Curie, SIOPEN).
``segment``
    CT tissue classes and densities, threshold lesions.
"""
