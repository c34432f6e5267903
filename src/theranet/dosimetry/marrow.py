"""Red (bone) marrow dosimetry: blood-based and image-based (clinical.md §6.6).

Blood-based (EANM 2010 / Sgouros 1993)
--------------------------------------
``TIA_RM = TIA_blood[per g] * RMBLR * m_RM``, with ``TIA_blood[per g] =
TIA_blood[per mL] / rho_blood`` (rho_blood = 1.06 g/mL), and

``D_RM = TIA_RM S(RM<-RM) + TIA_RB S(RM<-RB) + sum_h TIA_h S(RM<-h)``.

RMBLR (red-marrow-to-blood activity-concentration ratio): 1 for 177Lu-DOTATATE
and small peptides (Forrer 2009; the default here), ``0.19/(1 - Hct)`` for
antibodies without marrow binding (Sgouros 1993; :func:`rmblr_from_hematocrit`).

The remainder-of-body S-value, when not given, is derived with the MIRD
correction (:func:`remainder_of_body_s`)::

    S(RM<-RB) = S(RM<-TB) m_TB/m_RB - S(RM<-RM) m_RM/m_RB - sum_h S(RM<-h) m_h/m_RB,
    m_RB = m_TB - m_RM - sum_h m_h

where all S-values and masses are the *phantom's* (those the S table belongs to).

Image-based
-----------
``TIA_RM = TIA_VOI / (RC * f_RM)``: the TIA in lumbar-vertebra VOIs (L2-L4, say),
corrected for partial volume with a recovery coefficient RC (e.g. 0.78, Santoro
2018, :data:`SANTORO_2018_RC`), scaled to the whole red marrow by the fraction
``f_RM`` of the red marrow in those vertebrae. ``f_RM`` is [UNCERTAIN] in the
specification (about 0.067 for L2-L4 is quoted with a question mark) and
therefore a required argument with no default. Self-dose either by
``S(RM<-RM)`` (``s_rm_rm_mgy_per_mbq_s``) or, if that is not given, by local
deposition of the nuclide's electron energy in the marrow mass (absorbed
fraction 1 for electrons, photons ignored: a good approximation for 177Lu).
Image-based doses run 2-4x higher than blood-based ones for 177Lu-DOTATATE, and
the 2 Gy marrow limit was derived from blood-based practice: report the method
(:attr:`MarrowDose.method`) with the value.

Units: TIA MBq h, mass g, S mGy/(MBq s), dose Gy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from theranet.dosimetry.organ import DosimetryInputError, tia_s_to_gy
from theranet.nuclides import Nuclide

__all__ = [
    "BLOOD_DENSITY_G_PER_ML",
    "ICRP89_RED_MARROW_MASS_G",
    "RMECFF_SGOUROS_1993",
    "SANTORO_2018_RC",
    "MarrowDose",
    "blood_based_marrow_dose",
    "image_based_marrow_dose",
    "local_deposition_dose_gy",
    "remainder_of_body_s",
    "rmblr_from_hematocrit",
]

#: Blood density, g/mL (clinical.md §6.6, EANM 2010).
BLOOD_DENSITY_G_PER_ML = 1.06
#: ICRP 89 reference adult red-marrow masses, g.
ICRP89_RED_MARROW_MASS_G = {"male": 1170.0, "female": 900.0}
#: Red-marrow extracellular-fluid fraction (Sgouros 1993).
RMECFF_SGOUROS_1993 = 0.19
#: Recovery coefficient for L2-L4 VOIs in 177Lu SPECT/CT (Santoro 2018); an example,
#: not a default: RC depends on the camera, reconstruction and VOI.
SANTORO_2018_RC = 0.78

_MEV_TO_J = 1.602176634e-13
_DECAYS_PER_MBQ_H = 1.0e6 * 3600.0


def _check(name: str, value: float, *, positive: bool = False) -> float:
    if value is None or not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "a positive" if positive else "a non-negative"
        raise DosimetryInputError(name, f"must be {need} finite number", value)
    return float(value)


def rmblr_from_hematocrit(hematocrit: float, rmecff: float = RMECFF_SGOUROS_1993) -> float:
    """Red-marrow-to-blood concentration ratio ``RMECFF / (1 - Hct)`` (Sgouros 1993).

    For antibodies and other agents without marrow or blood-cell binding.

    Parameters
    ----------
    hematocrit : float
        Hematocrit as a fraction, in the open interval (0, 0.8).
    rmecff : float, default 0.19
        Red-marrow extracellular-fluid fraction.

    Examples
    --------
    >>> round(rmblr_from_hematocrit(0.47), 2)
    0.36
    """
    if hematocrit is None or not math.isfinite(hematocrit) or not 0.0 < hematocrit < 0.8:
        raise DosimetryInputError(
            "hematocrit",
            "must be a fraction in (0, 0.8)",
            hematocrit,
            fix="give the hematocrit as a fraction (0.42), not a percentage",
        )
    if not (math.isfinite(rmecff) and 0.0 < rmecff <= 1.0):
        raise DosimetryInputError("rmecff", "must be in (0, 1]", rmecff)
    return rmecff / (1.0 - hematocrit)


def remainder_of_body_s(
    s_t_tb_mgy_per_mbq_s: float,
    total_body_mass_g: float,
    s_t_sources_mgy_per_mbq_s: Mapping[str, float],
    source_masses_g: Mapping[str, float],
) -> float:
    """MIRD remainder-of-body S-value, ``S(T<-RB)``, mGy/(MBq s).

    ``S(T<-RB) = S(T<-TB) m_TB/m_RB - sum_h S(T<-h) m_h/m_RB`` with
    ``m_RB = m_TB - sum_h m_h``; ``h`` runs over all regions counted separately
    (for marrow: the red marrow itself and every source organ). Phantom values.

    Parameters
    ----------
    s_t_tb_mgy_per_mbq_s : float
        S(T <- total body).
    total_body_mass_g : float
        Phantom total-body mass, g.
    s_t_sources_mgy_per_mbq_s : Mapping[str, float]
        S(T <- h) for the separately counted regions.
    source_masses_g : Mapping[str, float]
        Phantom masses of those regions, g (same keys).
    """
    _check("s_t_tb_mgy_per_mbq_s", s_t_tb_mgy_per_mbq_s)
    m_tb = _check("total_body_mass_g", total_body_mass_g, positive=True)
    if set(s_t_sources_mgy_per_mbq_s) != set(source_masses_g):
        raise DosimetryInputError(
            "source_masses_g",
            "keys differ from s_t_sources_mgy_per_mbq_s",
            (sorted(s_t_sources_mgy_per_mbq_s), sorted(source_masses_g)),
        )
    for k in source_masses_g:
        _check(f"source_masses_g[{k!r}]", source_masses_g[k], positive=True)
        _check(f"s_t_sources_mgy_per_mbq_s[{k!r}]", s_t_sources_mgy_per_mbq_s[k])
    m_rb = m_tb - math.fsum(source_masses_g.values())
    if m_rb <= 0:
        raise DosimetryInputError(
            "source_masses_g", "sum of region masses >= total-body mass", m_tb - m_rb
        )
    s_rb = (
        s_t_tb_mgy_per_mbq_s * m_tb
        - math.fsum(s_t_sources_mgy_per_mbq_s[k] * source_masses_g[k] for k in source_masses_g)
    ) / m_rb
    if s_rb < 0:
        raise DosimetryInputError(
            "s_t_tb_mgy_per_mbq_s",
            "remainder-of-body S comes out negative: inconsistent S-values or masses",
            s_rb,
        )
    return s_rb


@dataclass(frozen=True)
class MarrowDose:
    """Red-marrow absorbed dose and how it was obtained.

    Attributes
    ----------
    dose_gy : float
        Total, Gy.
    self_dose_gy : float
        From activity in the red marrow, Gy.
    remainder_dose_gy : float
        Cross-dose from the remainder of the body, Gy (0 if not computed).
    organ_doses_gy : dict
        Cross-dose per source organ, Gy.
    tia_rm_mbq_h : float
        Red-marrow TIA, MBq h.
    method : str
        ``"blood-based"`` or ``"image-based"``.
    rmblr : float or None
        Ratio used (blood-based only).
    notes : tuple of str
        Choices and defaults used.
    """

    dose_gy: float
    self_dose_gy: float
    remainder_dose_gy: float
    organ_doses_gy: dict[str, float]
    tia_rm_mbq_h: float
    method: str
    rmblr: float | None = None
    notes: tuple[str, ...] = ()


def _cross_doses(
    organ_tia_mbq_h: Mapping[str, float] | None,
    s_rm_organ_mgy_per_mbq_s: Mapping[str, float] | None,
) -> dict[str, float]:
    organ_tia_mbq_h = organ_tia_mbq_h or {}
    s_rm_organ_mgy_per_mbq_s = s_rm_organ_mgy_per_mbq_s or {}
    out = {}
    for organ, tia in organ_tia_mbq_h.items():
        if organ not in s_rm_organ_mgy_per_mbq_s:
            raise DosimetryInputError(
                f"s_rm_organ_mgy_per_mbq_s[{organ!r}]", "missing for a source organ with TIA"
            )
        _check(f"organ_tia_mbq_h[{organ!r}]", tia)
        s = _check(f"s_rm_organ_mgy_per_mbq_s[{organ!r}]", s_rm_organ_mgy_per_mbq_s[organ])
        out[organ] = tia_s_to_gy(tia, s)
    return out


def blood_based_marrow_dose(
    blood_tia_mbq_h_per_ml: float,
    *,
    marrow_mass_g: float,
    s_rm_rm_mgy_per_mbq_s: float,
    rmblr: float | None = None,
    hematocrit: float | None = None,
    blood_density_g_per_ml: float = BLOOD_DENSITY_G_PER_ML,
    remainder_tia_mbq_h: float | None = None,
    s_rm_rb_mgy_per_mbq_s: float | None = None,
    s_rm_tb_mgy_per_mbq_s: float | None = None,
    phantom_total_body_mass_g: float | None = None,
    phantom_marrow_mass_g: float | None = None,
    phantom_s_rm_rm_mgy_per_mbq_s: float | None = None,
    organ_tia_mbq_h: Mapping[str, float] | None = None,
    s_rm_organ_mgy_per_mbq_s: Mapping[str, float] | None = None,
    phantom_organ_masses_g: Mapping[str, float] | None = None,
) -> MarrowDose:
    """Blood-based red-marrow dose (EANM 2010 / Sgouros 1993).

    Parameters
    ----------
    blood_tia_mbq_h_per_ml : float
        TIA concentration of whole blood, MBq h per mL.
    marrow_mass_g : float
        (Patient) red-marrow mass, g; e.g. :data:`ICRP89_RED_MARROW_MASS_G`.
    s_rm_rm_mgy_per_mbq_s : float
        S(RM <- RM) for that marrow mass, mGy/(MBq s).
    rmblr : float, optional
        Red-marrow-to-blood concentration ratio. Default 1 (177Lu-DOTATATE,
        Forrer 2009) unless ``hematocrit`` is given. Not both.
    hematocrit : float, optional
        Use ``RMBLR = 0.19/(1 - Hct)`` (antibodies; Sgouros 1993).
    blood_density_g_per_ml : float, default 1.06
        Converts the per-mL TIA to per g.
    remainder_tia_mbq_h : float, optional
        TIA in the remainder of the body (total body minus marrow and the organs
        in ``organ_tia_mbq_h``), MBq h. Cross-dose is added when given, with
        ``s_rm_rb_mgy_per_mbq_s`` or the inputs of the remainder correction.
    s_rm_rb_mgy_per_mbq_s : float, optional
        S(RM <- remainder of body), if already known.
    s_rm_tb_mgy_per_mbq_s, phantom_total_body_mass_g, phantom_marrow_mass_g : float, optional
        Inputs of :func:`remainder_of_body_s` when ``s_rm_rb`` is not given
        (phantom values).
    phantom_s_rm_rm_mgy_per_mbq_s : float, optional
        The phantom's S(RM <- RM), mGy/(MBq s), for the remainder correction (which
        subtracts the phantom's marrow from its total body). Needed when
        ``marrow_mass_g`` differs from ``phantom_marrow_mass_g``; when they are
        equal, ``s_rm_rm_mgy_per_mbq_s`` is the phantom's value and is used.
    organ_tia_mbq_h, s_rm_organ_mgy_per_mbq_s : Mapping[str, float], optional
        Source organs counted separately (liver, kidneys, spleen...): their TIA
        and S(RM <- organ); the cross-dose is added.
    phantom_organ_masses_g : Mapping[str, float], optional
        Phantom masses of those organs, for the remainder correction.

    Returns
    -------
    MarrowDose
    """
    conc = _check("blood_tia_mbq_h_per_ml", blood_tia_mbq_h_per_ml)
    m_rm = _check("marrow_mass_g", marrow_mass_g, positive=True)
    s_rm_rm = _check("s_rm_rm_mgy_per_mbq_s", s_rm_rm_mgy_per_mbq_s)
    rho = _check("blood_density_g_per_ml", blood_density_g_per_ml, positive=True)
    notes: list[str] = []
    if rmblr is not None and hematocrit is not None:
        raise DosimetryInputError(
            "rmblr", "give rmblr or hematocrit, not both", (rmblr, hematocrit)
        )
    if hematocrit is not None:
        ratio = rmblr_from_hematocrit(hematocrit)
        notes.append(f"RMBLR = 0.19/(1 - {hematocrit:g}) = {ratio:.4g} (Sgouros 1993)")
    elif rmblr is not None:
        ratio = _check("rmblr", rmblr, positive=True)
        notes.append(f"RMBLR = {ratio:g} (given)")
    else:
        ratio = 1.0
        notes.append("RMBLR = 1 (default; 177Lu-DOTATATE, Forrer 2009)")
    tia_rm = conc / rho * ratio * m_rm
    self_dose = tia_s_to_gy(tia_rm, s_rm_rm)
    organ_doses = _cross_doses(organ_tia_mbq_h, s_rm_organ_mgy_per_mbq_s)

    remainder_dose = 0.0
    if remainder_tia_mbq_h is not None:
        tia_rb = _check("remainder_tia_mbq_h", remainder_tia_mbq_h)
        if s_rm_rb_mgy_per_mbq_s is not None:
            s_rb = _check("s_rm_rb_mgy_per_mbq_s", s_rm_rb_mgy_per_mbq_s)
            notes.append("S(RM<-RB) given")
        else:
            if s_rm_tb_mgy_per_mbq_s is None or phantom_total_body_mass_g is None:
                raise DosimetryInputError(
                    "s_rm_rb_mgy_per_mbq_s",
                    "remainder TIA given without S(RM<-RB)",
                    fix="give s_rm_rb_mgy_per_mbq_s, or s_rm_tb_mgy_per_mbq_s with "
                    "phantom_total_body_mass_g and phantom_marrow_mass_g",
                )
            if phantom_marrow_mass_g is None:
                raise DosimetryInputError(
                    "phantom_marrow_mass_g", "needed for the remainder correction"
                )
            m_rm_ph = _check("phantom_marrow_mass_g", phantom_marrow_mass_g, positive=True)
            if phantom_s_rm_rm_mgy_per_mbq_s is not None:
                s_rm_rm_ph = _check("phantom_s_rm_rm_mgy_per_mbq_s", phantom_s_rm_rm_mgy_per_mbq_s)
            elif math.isclose(m_rm, m_rm_ph, rel_tol=1e-9):
                s_rm_rm_ph = s_rm_rm
            else:
                raise DosimetryInputError(
                    "phantom_s_rm_rm_mgy_per_mbq_s",
                    f"needed: the patient's marrow mass ({m_rm:g} g) differs from the "
                    f"phantom's ({m_rm_ph:g} g), so S(RM<-RM) of the patient is not the "
                    "phantom's",
                    fix="give the phantom's S(RM<-RM) (same table as S(RM<-TB))",
                )
            s_src = {"red_marrow": s_rm_rm_ph}
            m_src = {"red_marrow": m_rm_ph}
            organs = dict(organ_tia_mbq_h or {})
            masses = dict(phantom_organ_masses_g or {})
            for organ in organs:
                if organ not in masses:
                    raise DosimetryInputError(
                        f"phantom_organ_masses_g[{organ!r}]",
                        "needed for the remainder correction",
                    )
                s_src[organ] = s_rm_organ_mgy_per_mbq_s[organ]  # checked in _cross_doses
                m_src[organ] = masses[organ]
            s_rb = remainder_of_body_s(
                s_rm_tb_mgy_per_mbq_s, phantom_total_body_mass_g, s_src, m_src
            )
            notes.append("S(RM<-RB) from S(RM<-TB) by the MIRD remainder correction")
        remainder_dose = tia_s_to_gy(tia_rb, s_rb)
    else:
        notes.append("no remainder-of-body cross-dose (remainder_tia_mbq_h not given)")

    total = math.fsum([self_dose, remainder_dose, *organ_doses.values()])
    return MarrowDose(
        dose_gy=total,
        self_dose_gy=self_dose,
        remainder_dose_gy=remainder_dose,
        organ_doses_gy=organ_doses,
        tia_rm_mbq_h=tia_rm,
        method="blood-based",
        rmblr=ratio,
        notes=tuple(notes),
    )


def local_deposition_dose_gy(tia_mbq_h: float, energy_per_decay_mev: float, mass_g: float) -> float:
    """Dose in Gy from local deposition of ``energy_per_decay_mev`` in ``mass_g``.

    ``D = TIA * 3.6e9 decays/(MBq h) * E * 1.602e-13 J/MeV / (m / 1000 kg/g)``.
    For 177Lu electrons (0.1479 MeV/decay) that is 0.0853 Gy per GBq h per kg.
    """
    tia = _check("tia_mbq_h", tia_mbq_h)
    e = _check("energy_per_decay_mev", energy_per_decay_mev)
    m = _check("mass_g", mass_g, positive=True)
    return tia * _DECAYS_PER_MBQ_H * e * _MEV_TO_J / (m / 1000.0)


def image_based_marrow_dose(
    voi_tia_mbq_h: float,
    *,
    red_marrow_fraction_in_voi: float,
    recovery_coefficient: float,
    marrow_mass_g: float,
    s_rm_rm_mgy_per_mbq_s: float | None = None,
    nuclide: str | None = None,
    organ_tia_mbq_h: Mapping[str, float] | None = None,
    s_rm_organ_mgy_per_mbq_s: Mapping[str, float] | None = None,
) -> MarrowDose:
    """Image-based red-marrow dose from lumbar-vertebra VOIs.

    ``TIA_RM = voi_tia / (RC * f_RM)``, then self-dose by ``S(RM<-RM)`` when
    given, else by local deposition of ``nuclide``'s electron energy per decay in
    ``marrow_mass_g`` (photons ignored).

    Parameters
    ----------
    voi_tia_mbq_h : float
        TIA in the vertebral VOIs (e.g. L2-L4), MBq h, not corrected for partial volume.
    red_marrow_fraction_in_voi : float
        Fraction of the total red marrow inside those vertebrae, in (0, 1].
        [UNCERTAIN] in the specification (about 0.067 for L2-L4?); no default.
    recovery_coefficient : float
        Partial-volume recovery coefficient of the VOI, in (0, 1]; e.g.
        :data:`SANTORO_2018_RC` (0.78).
    marrow_mass_g : float
        Red-marrow mass, g.
    s_rm_rm_mgy_per_mbq_s : float, optional
        S(RM <- RM) for that mass. If absent, local deposition is used and
        ``nuclide`` is required.
    nuclide : str, optional
        For local deposition.
    organ_tia_mbq_h, s_rm_organ_mgy_per_mbq_s : Mapping[str, float], optional
        Cross-dose from source organs (added; no remainder term).

    Returns
    -------
    MarrowDose
    """
    tia_voi = _check("voi_tia_mbq_h", voi_tia_mbq_h)
    f = _check("red_marrow_fraction_in_voi", red_marrow_fraction_in_voi, positive=True)
    rc = _check("recovery_coefficient", recovery_coefficient, positive=True)
    if f > 1:
        raise DosimetryInputError("red_marrow_fraction_in_voi", "must be in (0, 1]", f)
    if rc > 1:
        raise DosimetryInputError("recovery_coefficient", "must be in (0, 1]", rc)
    m_rm = _check("marrow_mass_g", marrow_mass_g, positive=True)
    tia_rm = tia_voi / (rc * f)
    notes = [f"TIA_RM = TIA_VOI / (RC {rc:g} x f_RM {f:g})"]
    if s_rm_rm_mgy_per_mbq_s is not None:
        self_dose = tia_s_to_gy(tia_rm, _check("s_rm_rm_mgy_per_mbq_s", s_rm_rm_mgy_per_mbq_s))
        notes.append("self-dose by S(RM<-RM)")
    elif nuclide is not None:
        e = Nuclide(nuclide).electron_energy_mev
        self_dose = local_deposition_dose_gy(tia_rm, e, m_rm)
        notes.append(f"self-dose by local deposition of {e:.4g} MeV/decay (electrons)")
    else:
        raise DosimetryInputError(
            "s_rm_rm_mgy_per_mbq_s",
            "need S(RM<-RM) or a nuclide for local deposition",
        )
    organ_doses = _cross_doses(organ_tia_mbq_h, s_rm_organ_mgy_per_mbq_s)
    return MarrowDose(
        dose_gy=math.fsum([self_dose, *organ_doses.values()]),
        self_dose_gy=self_dose,
        remainder_dose_gy=0.0,
        organ_doses_gy=organ_doses,
        tia_rm_mbq_h=tia_rm,
        method="image-based",
        rmblr=None,
        notes=tuple(notes),
    )
