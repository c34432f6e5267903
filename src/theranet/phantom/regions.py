"""Region names and label values of the digital NET patient.

One table shared by the anatomy (which draws the regions), the kinetics (which
gives each region its time-activity curve), the image formation and the ground
truth. Lesion names are built with :func:`lesion_name`.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["LESION_SITES", "ORGANS", "REGION_LABELS", "lesion_name"]

#: Label value -> region name for normal tissues and organs (0 = outside the body).
ORGANS = MappingProxyType(
    {
        1: "remainder",  # soft tissue not listed below (connective tissue, brain...)
        2: "subcutaneous_fat",
        3: "muscle",
        4: "lungs",
        5: "heart_wall",
        6: "heart_blood",  # blood pool of the heart chambers (blood curve)
        7: "liver",  # normal parenchyma (metastases are separate regions)
        8: "spleen",
        9: "kidney_cortex",
        10: "kidney_medulla",
        11: "bladder",  # urine contents
        12: "pancreas",
        13: "stomach",
        14: "bowel",
        15: "adrenals",
        16: "salivary_glands",
        17: "thyroid",
        18: "pituitary",
        19: "cortical_bone",  # spine and pelvis cortical shell
        20: "red_marrow",  # trabecular spongiosa of spine and pelvis
        21: "brain",
    }
)

#: Lesion sites; lesions take label values from 100 upwards.
LESION_SITES = ("liver", "pancreas", "node", "bone")

#: First label value of lesions.
FIRST_LESION_LABEL = 100

#: Label value -> name of every organ (lesions are added per patient).
REGION_LABELS = ORGANS


def lesion_name(site: str, index: int) -> str:
    """``"lesion_liver_1"``, ``"lesion_pancreas_1"``, ``"lesion_node_2"``..."""
    if site not in LESION_SITES:
        raise ValueError(f"site: {site!r}; use one of {LESION_SITES}")
    if index < 1:
        raise ValueError(f"index: must be >= 1, got {index}")
    return f"lesion_{site}_{index}"
