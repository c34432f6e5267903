"""The ``theranet`` command: one verb per job.

Verbs of the foundation: ``nuclide`` (decay data), ``info`` (what a reader sees
in an image: quantity, unit, geometry, timing, assumptions), ``convert`` (any
image to NIfTI + sidecar) and ``discover`` (patients, studies, series and time
points under a folder).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from theranet._version import __version__
from theranet.errors import TheranetError

app = typer.Typer(
    name="theranet",
    help="Neuroendocrine-tumour theranostics: quantitative imaging, dosimetry and response.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"theranet {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress.")] = False,
) -> None:
    """theranet: from the diagnostic scan to the dose of each therapy cycle."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


def _fail(exc: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def nuclide(
    name: Annotated[str, typer.Argument(help="Nuclide, e.g. Lu-177, 177Lu, lu177.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Half-life and mean energy per decay by emission class (ICRP-107)."""
    from theranet.nuclides import Nuclide

    try:
        nuc = Nuclide(name)
        classes = ("beta-", "beta+", "ce", "auger", "gamma", "xray", "annihilation")
        energies = {c: nuc.mean_energy_mev(c) for c in classes}
    except TheranetError as exc:
        _fail(exc)
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "nuclide": nuc.name,
                    "half_life_h": nuc.half_life_h,
                    "mean_energy_mev_per_decay": energies,
                    "electron_energy_mev": nuc.electron_energy_mev,
                    "photon_energy_mev": nuc.photon_energy_mev,
                }
            )
        )
        return
    table = Table(title=f"{nuc.name}: T1/2 = {nuc.half_life_h:.6g} h (ICRP-107)")
    table.add_column("emission class")
    table.add_column("mean energy (MeV/decay)", justify="right")
    for c, e in energies.items():
        table.add_row(c, f"{e:.6g}")
    table.add_row("[bold]electrons[/]", f"{nuc.electron_energy_mev:.6g}")
    table.add_row("[bold]photons[/]", f"{nuc.photon_energy_mev:.6g}")
    console.print(table)


StrictnessOpt = Annotated[
    str, typer.Option(help="strict: refuse dose-relevant problems; lenient: record them.")
]
InjectionOpt = Annotated[
    str | None, typer.Option(help="Injection datetime (ISO 8601) if the header lacks it.")
]
ActivityOpt = Annotated[
    float | None, typer.Option(help="Administered activity, MBq, if the header lacks it.")
]
CalibrationOpt = Annotated[
    float | None, typer.Option(help="SPECT sensitivity, cps/MBq, for count images.")
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        help="Treatment registry: a SQLite file or a database URL (default "
        "$XDG_DATA_HOME/theranet/registry.sqlite).",
    ),
]


def _registry(where: str | None):
    """Open the registry at ``where`` (file or URL) or the default file."""
    from theranet.registry import open_registry

    return open_registry(where)


NuclideOpt = Annotated[str | None, typer.Option(help="Nuclide if the header lacks it (Lu-177).")]
UnitsOpt = Annotated[
    str | None, typer.Option(help="PET Units if the header lacks them (BQML, CNTS, GML).")
]
DecayOpt = Annotated[
    str | None,
    typer.Option(help="PET Decay Correction if the header lacks it (START, ADMIN, NONE)."),
]


def _reader_options(
    path: Path,
    strictness: str,
    injection_datetime: str | None,
    activity_mbq: float | None,
    calibration_cps_per_mbq: float | None,
    nuclide: str | None,
    units: str | None,
    decay_correction: str | None,
) -> dict:
    """Keyword arguments for :func:`theranet.io.read_image` from the CLI options."""
    if path.name.endswith((".nii", ".nii.gz")):
        return {"strictness": strictness}
    return {
        "strictness": strictness,
        "injection": _parse_datetime(injection_datetime, "--injection-datetime"),
        "administered_activity_mbq": activity_mbq,
        "calibration_cps_per_mbq": calibration_cps_per_mbq,
        "nuclide": nuclide,
        "units": units,
        "decay_correction": decay_correction,
    }


@contextlib.contextmanager
def _progress(label: str, quiet: bool):
    """A progress callback: a spinner on a terminal, plain lines on stderr
    otherwise, nothing when quiet."""
    if quiet:
        yield lambda msg: None
    elif console.is_terminal:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                   TimeElapsedColumn())  # fmt: skip
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(label, total=None)
            yield lambda msg: bar.update(task, description=f"{label}: {msg}")
    else:
        yield lambda msg: err_console.print(msg)


def _parse_datetime(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO datetime (e.g. 2026-03-01T09:30)", param_hint=option
        ) from None


@app.command()
def info(
    path: Annotated[Path, typer.Argument(help="NIfTI file, NM SPECT file or DICOM series folder.")],
    strictness: StrictnessOpt = "strict",
    injection_datetime: InjectionOpt = None,
    activity_mbq: ActivityOpt = None,
    calibration_cps_per_mbq: CalibrationOpt = None,
    nuclide: NuclideOpt = None,
    units: UnitsOpt = None,
    decay_correction: DecayOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Read an image and show what theranet understood of it."""
    from theranet.io import read_image

    kwargs = _reader_options(
        path,
        strictness,
        injection_datetime,
        activity_mbq,
        calibration_cps_per_mbq,
        nuclide,
        units,
        decay_correction,
    )
    try:
        img = read_image(path, **kwargs)
    except (TheranetError, FileNotFoundError, TypeError) as exc:
        _fail(exc)
    t = img.timing
    summary = {
        "modality": img.modality,
        "quantity": img.quantity.value,
        "unit": img.unit,
        "shape": list(img.shape),
        "spacing_mm": [round(float(s), 6) for s in img.spacing_mm],
        "affine_lps_mm": img.affine.round(6).tolist(),
        "nuclide": img.nuclide,
        "tracer": img.tracer,
        "acquisition_start": t.acquisition_start.isoformat() if t.acquisition_start else None,
        "frame_duration_h": t.frame_duration_h,
        "injection": t.injection.isoformat() if t.injection else None,
        "injection_source": t.injection_source,
        "administered_activity_mbq": t.administered_activity_mbq,
        "decay_correction": t.decay_correction.value,
        "provenance": list(img.provenance.steps),
        "assumptions": list(img.provenance.assumptions),
    }
    if as_json:
        console.print_json(json.dumps(summary))
        return
    table = Table(title=str(path.name), show_header=False)
    for k, v in summary.items():
        if k == "affine_lps_mm":
            v = "\n".join(" ".join(f"{x:10.4f}" for x in row) for row in v)
        elif isinstance(v, list) and k in ("provenance", "assumptions"):
            v = "\n".join(v) if v else "-"
        table.add_row(k, str(v))
    console.print(table)


@app.command()
def convert(
    source: Annotated[
        Path, typer.Argument(help="NM SPECT file, DICOM series folder or NIfTI file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .nii.gz (sidecar beside it).")],
    strictness: StrictnessOpt = "strict",
    injection_datetime: InjectionOpt = None,
    activity_mbq: ActivityOpt = None,
    calibration_cps_per_mbq: CalibrationOpt = None,
    nuclide: NuclideOpt = None,
    units: UnitsOpt = None,
    decay_correction: DecayOpt = None,
) -> None:
    """Read an image and write it as NIfTI with its JSON sidecar (atomically)."""
    from theranet.io import read_image
    from theranet.io.nifti import write_nifti

    if not out.name.endswith((".nii", ".nii.gz")):
        raise typer.BadParameter("must end in .nii or .nii.gz", param_hint="--out")
    kwargs = _reader_options(
        source,
        strictness,
        injection_datetime,
        activity_mbq,
        calibration_cps_per_mbq,
        nuclide,
        units,
        decay_correction,
    )
    try:
        img = read_image(source, **kwargs)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_nifti(img, out)
    except (TheranetError, FileNotFoundError, TypeError) as exc:
        _fail(exc)
    console.print(f"wrote {out} ({img.quantity.value}, {img.unit}, shape {img.shape})")
    for a in img.provenance.assumptions:
        console.print(f"[yellow]assumed[/] {a}")


def _floats_option(value: str, option: str) -> list[float]:
    try:
        out = [float(v) for v in value.split(",") if v.strip() != ""]
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a comma-separated list of numbers", param_hint=option
        ) from None
    if not out:
        raise typer.BadParameter("needs at least one number", param_hint=option)
    return out


_TIA_METHODS = (
    "auto",
    "mono",
    "biexp",
    "biexp_uptake",
    "triexp",
    "trapezoid",
    "hanscheid",
    "madsen",
    "prior",
)


@app.command()
def tia(
    times_h: Annotated[str, typer.Option(help="Times after injection, h: 4,24,96,168.")],
    activities_mbq: Annotated[
        str, typer.Option(help="Activities at those times, MBq, not decay-corrected.")
    ],
    sd_mbq: Annotated[
        str | None, typer.Option(help="Standard deviations of the activities, MBq.")
    ] = None,
    nuclide: Annotated[str, typer.Option(help="Nuclide of the data.")] = "Lu-177",
    method: Annotated[
        str, typer.Option(help="auto (AICc), a model, trapezoid, hanscheid, madsen or prior.")
    ] = "auto",
    t_pop_h: Annotated[
        float | None, typer.Option(help="Population effective half-life, h (madsen).")
    ] = None,
    tracer: Annotated[
        str | None, typer.Option(help="Tracer for the population table (madsen/prior).")
    ] = None,
    organ: Annotated[
        str | None, typer.Option(help="Organ for the population table (madsen/prior).")
    ] = None,
    head: Annotated[str, typer.Option(help="trapezoid: zero or constant.")] = "zero",
    tail: Annotated[str, typer.Option(help="trapezoid: physical or fitted.")] = "physical",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Time-integrated activity of one time-activity curve (MBq h) with its SD."""
    from theranet import kinetics as k

    if method not in _TIA_METHODS:
        raise typer.BadParameter(
            f"{method!r}; use one of {', '.join(_TIA_METHODS)}", param_hint="--method"
        )
    t = _floats_option(times_h, "--times-h")
    a = _floats_option(activities_mbq, "--activities-mbq")
    sd = _floats_option(sd_mbq, "--sd-mbq") if sd_mbq else None
    model_name, params, extra = None, {}, {}
    try:
        if method in ("hanscheid", "madsen") and len(t) != 1:
            raise k.KineticsError(
                "--times-h",
                f"{method} is a single-time-point method",
                len(t),
                "give one time and one activity, or use --method auto",
            )
        if len(t) != len(a):
            raise k.KineticsError(
                "--activities-mbq",
                f"{len(a)} activities for {len(t)} times",
                a,
                "give one activity per time",
            )
        if method == "auto":
            sel = k.select_model(t, a, sd, nuclide=nuclide)
            fit = sel.best
            result = k.tia_from_fit(fit)
            extra = {
                "selection_rule": sel.rule,
                "aicc": dict(sel.aicc),
                "akaike_weights": dict(sel.akaike_weights),
            }
        elif method in ("mono", "biexp", "biexp_uptake", "triexp"):
            fit = k.fit_tac(t, a, method, nuclide=nuclide, sigma_mbq=sd)
            result = k.tia_from_fit(fit)
        elif method == "trapezoid":
            fit = None
            result = k.trapezoid_tia(t, a, nuclide=nuclide, head=head, tail=tail, sigma_mbq=sd)
        elif method == "hanscheid":
            fit, result = None, k.hanscheid_tia(a[0], t[0])
        elif method == "madsen":
            fit = None
            result = k.madsen_tia(
                a[0], t[0], t_pop_h=t_pop_h, tracer=tracer, organ=organ, nuclide=nuclide
            )
        else:
            fit = None
            result = k.prior_tia(
                t,
                a,
                nuclide=nuclide,
                sigma_mbq=sd,
                tracer=tracer,
                organ=organ,
                t_eff_mean_h=t_pop_h,
            )
    except TheranetError as exc:
        _fail(exc)
    if fit is not None:
        model_name = fit.model.name
        params = {n: float(v) for n, v in zip(fit.model.param_names, fit.params, strict=True)}
        extra["weighting"] = fit.weighting
        extra["warnings"] = list(fit.warnings)
    out = {
        "method": result.method,
        "model": model_name,
        "parameters": params,
        "tia_mbq_h": result.tia_mbq_h,
        "tia_sd_mbq_h": None if math.isnan(result.sd_mbq_h) else result.sd_mbq_h,
        "nuclide": result.nuclide,
        "rules": list(result.rules),
        "result_warnings": list(result.warnings),
        **extra,
    }
    if as_json:
        console.print_json(json.dumps(out, default=float))
        return
    table = Table(title=f"TIA ({result.method})", show_header=False)
    table.add_row("model", str(model_name or "-"))
    for n, v in params.items():
        table.add_row(n, f"{v:.6g}")
    sd_txt = "n/a" if out["tia_sd_mbq_h"] is None else f"{result.sd_mbq_h:.4g}"
    table.add_row("TIA (MBq h)", f"{result.tia_mbq_h:.6g} ± {sd_txt}")
    for r in result.rules:
        table.add_row("rule", r)
    for w in (*result.warnings, *extra.get("warnings", [])):
        table.add_row("[yellow]warning[/]", w)
    console.print(table)


@app.command()
def kernel(
    nuclide_name: Annotated[str, typer.Argument(metavar="NUCLIDE", help="e.g. Lu-177, 90Y.")],
    voxel_mm: Annotated[
        str | None, typer.Option(help="Voxel size, mm: one value or three (2,2,3).")
    ] = None,
    medium: Annotated[str, typer.Option(help="water, soft_tissue or bone.")] = "water",
    emissions: Annotated[
        str, typer.Option(help="Emission classes: beta,ce,auger,gamma,xray (default all).")
    ] = "beta,ce,auger,gamma,xray",
    n_voxels: Annotated[int, typer.Option(help="Octant extent in voxels (>= 5).")] = 10,
    sphere_g: Annotated[
        float | None, typer.Option(help="Print the self-dose S-value of a sphere of this mass, g.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output CSV: i,j,k,s_mGy_per_MBq_s.")] = None,
) -> None:
    """Voxel S-values (one octant, CSV) or a sphere-model S-value, from first principles."""
    from theranet.physics.kernels import sphere_s_value, voxel_s_values

    if medium not in ("water", "soft_tissue", "bone"):
        raise typer.BadParameter(
            f"{medium!r}; use water, soft_tissue or bone", param_hint="--medium"
        )
    try:
        if sphere_g is not None:
            s = sphere_s_value(nuclide_name, sphere_g, material=medium, emissions=emissions)
            console.print(
                f"{s:.6g} mGy/(MBq s)  ({nuclide_name}, {sphere_g:g} g sphere of "
                f"{medium}, emissions {emissions})"
            )
            return
        if voxel_mm is None or out is None:
            raise typer.BadParameter("give --voxel-mm and --out (or --sphere-g)")
        if n_voxels < 5:
            raise typer.BadParameter("must be at least 5", param_hint="--n-voxels")
        vox = _floats_option(voxel_mm, "--voxel-mm")
        if len(vox) not in (1, 3):
            raise typer.BadParameter("one value or three", param_hint="--voxel-mm")
        with _progress("computing voxel S-values", quiet=False):
            s = voxel_s_values(
                nuclide_name,
                vox if len(vox) == 3 else vox[0],
                material=medium,
                emissions=emissions,
                n_voxels=n_voxels,
            )
        s.to_csv(out)
    except (TheranetError, ValueError) as exc:
        _fail(exc)
    console.print(
        f"wrote {out}: self-voxel S = {s.self_s:.6g} mGy/(MBq s); kernel holds "
        f"{s.kernel_energy_mev:.5g} of {s.emitted_energy_mev:.5g} MeV/decay emitted"
    )


@app.command()
def phantom(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    tracer: Annotated[str, typer.Option(help="Catalogue tracer, e.g. 177Lu-DOTATATE.")] = (
        "177Lu-DOTATATE"
    ),
    activity_gbq: Annotated[
        float | None, typer.Option(help="Administered activity, GBq (default: typical).")
    ] = None,
    times_h: Annotated[str, typer.Option(help="Hours after injection: 4,24,96,168.")] = (
        "4,24,96,168"
    ),
    seed: Annotated[int, typer.Option(help="Varies the patient; fixes every UID.")] = 0,
    spect_variant: Annotated[
        str, typer.Option(help="rwvm (Bq/mL in the file) or counts (calibration in the truth).")
    ] = "rwvm",
    no_dose: Annotated[bool, typer.Option("--no-dose", help="Skip the true doses.")] = False,
    cycle: Annotated[
        int,
        typer.Option(
            min=1,
            help="Therapy cycle of the same patient (8 weeks apart, own kinetics draw).",
        ),
    ] = 1,
    response_scenario: Annotated[
        str | None,
        typer.Option(
            help="Instead of a therapy study: CT studies over time whose lesions change as "
            "designed (partial_response, progression, nadir_progression, new_lesion, "
            "complete_response, stable), for `theranet response`.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Image the digital NET patient: DICOM per time point and ground_truth.json."""
    from theranet.phantom.generate import generate_study

    if response_scenario is not None:
        from theranet.phantom.response import generate_response_series

        try:
            series = generate_response_series(out, response_scenario, seed=seed)
        except (TheranetError, ValueError) as exc:
            _fail(exc)
        if not quiet:
            console.print(f"wrote {len(series.study_dirs)} studies and {series.truth_path}")
        return
    times = _floats_option(times_h, "--times-h")
    try:
        with _progress("digital patient", quiet) as progress:
            study = generate_study(
                out,
                tracer=tracer,
                activity_gbq=activity_gbq,
                times_h=times,
                seed=seed,
                spect_variant=spect_variant,
                with_dose=not no_dose,
                cycle=cycle,
                progress=progress,
            )
    except (TheranetError, ValueError) as exc:
        _fail(exc)
    if not quiet:
        console.print(
            f"wrote {len(study.time_point_dirs)} time points and {study.ground_truth_path}"
        )


@app.command()
def discover(
    root: Annotated[Path, typer.Argument(help="Folder to search recursively.")],
    lenient: Annotated[
        bool, typer.Option(help="Skip non-DICOM files instead of refusing them.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List patients (pseudonymised), time points and series under a folder."""
    from theranet.io.discovery import discover as _discover

    try:
        groups = _discover(root, strictness="lenient" if lenient else "strict")
    except (TheranetError, FileNotFoundError) as exc:
        _fail(exc)
    if as_json:
        out = [
            {
                "patient": g.pseudonym,
                "time_points": [
                    {
                        "hours_after_injection": tp.hours_after_injection,
                        "series": [
                            {
                                "kind": s.kind,
                                "modality": s.modality,
                                "files": len(s.paths),
                                "description": s.description,
                            }
                            for s in tp.series
                        ],
                    }
                    for tp in g.time_points
                ],
                "skipped": list(g.skipped),
            }
            for g in groups
        ]
        console.print_json(json.dumps(out))
        return
    for g in groups:
        table = Table(title=f"patient {g.pseudonym}")
        table.add_column("h after injection", justify="right")
        table.add_column("kind")
        table.add_column("files", justify="right")
        table.add_column("description")
        for tp in g.time_points:
            h = "?" if tp.hours_after_injection is None else f"{tp.hours_after_injection:.2f}"
            for s in tp.series:
                table.add_row(h, s.kind, str(len(s.paths)), s.description)
        console.print(table)
        for s in g.skipped:
            console.print(f"[yellow]skipped[/] {s}")


@app.command()
def dosimetry(
    study_dir: Annotated[
        Path, typer.Argument(help="Folder of one patient's SPECT/CT time points (one cycle).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    labels: Annotated[
        Path | None,
        typer.Option(
            help="Regions on the CT of the first time point: NIfTI label map with sidecar, "
            "DICOM SEG or RTSTRUCT (default STUDY_DIR/labels.nii.gz)."
        ),
    ] = None,
    fwhm_mm: Annotated[
        float | None,
        typer.Option(
            "--fwhm-mm",
            help="Reconstructed SPECT resolution (FWHM, mm) for the partial-volume correction "
            "(geometric transfer matrix). Without it, none is applied.",
        ),
    ] = None,
    fwhm_sd_mm: Annotated[
        float | None, typer.Option("--fwhm-sd-mm", help="Uncertainty of the FWHM, mm.")
    ] = None,
    calibration_cps_per_mbq: Annotated[
        float | None,
        typer.Option("--calibration-cps-per-mbq", help="SPECT sensitivity for count images."),
    ] = None,
    calibration_sd_percent: Annotated[
        float | None,
        typer.Option("--calibration-sd-percent", help="Calibration uncertainty, %."),
    ] = None,
    tracer: Annotated[
        str | None, typer.Option(help="Catalogue tracer (default: from the headers).")
    ] = None,
    nuclide: NuclideOpt = None,
    register: Annotated[
        str, typer.Option(help="Registration of the time points: rigid, deformable or none.")
    ] = "rigid",
    method: Annotated[
        str,
        typer.Option(help="Voxel dose: convolution, density_corrected or local."),
    ] = "convolution",
    within_region: Annotated[
        str | None,
        typer.Option(
            help="TIA within a region: uniform (default with --fwhm-mm) or spect (shape of "
            "the time-integrated SPECT)."
        ),
    ] = None,
    stp: Annotated[
        str | None,
        typer.Option(help="Single-time-point method for one time point: hanscheid or madsen."),
    ] = None,
    lesion_threshold: Annotated[
        float | None,
        typer.Option(
            "--lesion-threshold-mbq-per-ml",
            help="Add lesions: connected SPECT voxels above this concentration.",
        ),
    ] = None,
    blood: Annotated[
        Path | None,
        typer.Option(
            help="Blood samples CSV (hours_after_injection, activity_concentration_mbq_per_ml) "
            "for the blood-based marrow dose (default STUDY_DIR/blood_samples.csv if present)."
        ),
    ] = None,
    hematocrit: Annotated[
        float | None, typer.Option(help="Haematocrit for RMBLR = 0.19/(1 - Hct).")
    ] = None,
    red_marrow_mass_g: Annotated[
        float | None, typer.Option("--red-marrow-mass-g", help="Red-marrow mass, g.")
    ] = None,
    strictness: StrictnessOpt = "strict",
    registry: RegistryOpt = None,
    no_registry: Annotated[
        bool, typer.Option("--no-registry", help="Do not record the cycle in the registry.")
    ] = False,
    patient_id: Annotated[
        str | None,
        typer.Option(help="Pseudonymous id in the registry (default: derived from the headers)."),
    ] = None,
    new_treatment: Annotated[
        bool,
        typer.Option(
            "--new-treatment",
            help="Record the cycle as cycle 1 of a new treatment (another course or tracer).",
        ),
    ] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip report.html/pdf.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Doses per region with uncertainty, dose map (NIfTI, RT Dose), SEG and report;
    the cycle is recorded in the treatment registry."""
    from theranet.pipeline import run_dosimetry

    try:
        with _progress("dosimetry", quiet) as progress:
            result = run_dosimetry(
                study_dir,
                out,
                labels_path=labels,
                fwhm_mm=fwhm_mm,
                fwhm_sd_mm=fwhm_sd_mm,
                calibration_cps_per_mbq=calibration_cps_per_mbq,
                calibration_sd_percent=calibration_sd_percent,
                tracer=tracer,
                nuclide=nuclide,
                register=register,
                dose_method=method,
                within_region=within_region,
                stp=stp,
                lesion_threshold_mbq_per_ml=lesion_threshold,
                blood_path=blood,
                hematocrit=hematocrit,
                red_marrow_mass_g=red_marrow_mass_g,
                strictness=strictness,
                report=not no_report,
                registry=None if no_registry else _registry(registry),
                patient_id=patient_id,
                new_treatment=new_treatment,
                progress=progress,
            )
    except (TheranetError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if not quiet:
        a0 = result.administered_activity_mbq
        table = Table(
            "region", "kind", "TIA (MBq h)", "mean dose (Gy)", "SD (Gy)", "Gy/GBq", "model",
            title=f"{result.tracer}: absorbed doses",
        )  # fmt: skip
        for r in result.regions.values():
            table.add_row(
                r.region,
                r.kind,
                f"{r.tia_mbq_h:.4g}",
                f"{r.mean_dose_gy:.3g}",
                f"{r.dose_sd_gy:.2g}",
                f"{r.mean_dose_gy / (a0 / 1000):.3g}" if a0 else "",
                r.model,
            )
        console.print(table)
        for w in result.warnings:
            err_console.print(f"[yellow]warning:[/yellow] {w}")
        console.print("wrote " + ", ".join(str(p) for p in result.files.values()))


@app.command()
def plan(
    patient_id: Annotated[str, typer.Argument(help="Pseudonymous patient id in the registry.")],
    limit_kidney_bed_gy: Annotated[
        float | None,
        typer.Option(
            "--limit-kidney-bed-gy",
            help="Kidney BED limit, Gy (default 40; 28 with --risk-factors).",
        ),
    ] = None,
    risk_factors: Annotated[
        bool, typer.Option("--risk-factors", help="Kidney risk factors: the 28 Gy BED limit.")
    ] = False,
    max_activity_gbq: Annotated[
        float | None, typer.Option("--max-activity-gbq", help="Cap of the planned activity.")
    ] = None,
    activity_step_gbq: Annotated[
        float | None,
        typer.Option("--activity-step-gbq", help="Round down to this dispensable step, GBq."),
    ] = None,
    minimum_activity_gbq: Annotated[
        float | None,
        typer.Option(
            "--minimum-activity-gbq", help="Below this activity: stop and report (e.g. 3.7)."
        ),
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """The activity of the next cycle within the kidney BED and marrow dose limits."""
    from theranet.therapy.from_registry import PLAN_HEADERS, plan_from_registry, plan_rows

    try:
        result, notes = plan_from_registry(
            _registry(registry),
            patient_id,
            risk_factors=risk_factors,
            limit_kidney_bed_gy=limit_kidney_bed_gy,
            max_activity_gbq=max_activity_gbq,
            activity_step_gbq=activity_step_gbq,
            minimum_activity_gbq=minimum_activity_gbq,
        )
    except (TheranetError, ValueError) as exc:
        _fail(exc)
    table = Table(*PLAN_HEADERS, title=f"Next cycle of {patient_id}")
    for row in plan_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"planned activity: {result.activity_gbq:.3g} ± {result.activity_sd_gbq:.2g} GBq "
        f"(limited by {result.limiting_organ}; {result.activity_95_gbq:.3g} GBq keeps it within "
        f"the limit with 95 % confidence)"
    )
    console.print(
        f"standard {result.standard_activity_gbq:g} GBq cycles the limits still allow: "
        f"{result.n_standard_cycles_allowed}; standard {result.standard_cycles} x "
        f"{result.standard_activity_gbq:g} GBq regimen within the limits: "
        f"{'yes' if result.standard_regimen_within_limits else 'no'}"
    )
    if result.reason:
        console.print(result.reason)
    for line in [*notes, *result.notes]:
        console.print(f"- {line}")


@app.command()
def assess(
    scan_dir: Annotated[Path, typer.Argument(help="One diagnostic PET/CT or SPECT/CT folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    fwhm_mm: Annotated[
        float, typer.Option(help="Reconstructed system resolution of the scan, mm.")
    ],
    labels: Annotated[
        Path | None,
        typer.Option(help="Organ label map on the CT (NIfTI, SEG, RTSTRUCT) with the liver."),
    ] = None,
    question: Annotated[
        str, typer.Option(help="Eligibility to decide: prrt, mibg, or none.")
    ] = "prrt",
    clinical: Annotated[
        Path | None,
        typer.Option(help="Labs and clinical facts: TOML or JSON, tables labs and clinical."),
    ] = None,
    fdg: Annotated[
        Path | None,
        typer.Option(help="18F-FDG PET/CT of the same patient: dual-tracer (NETPET) grade."),
    ] = None,
    fdg_fwhm_mm: Annotated[
        float | None, typer.Option(help="Resolution of the FDG PET, mm (default --fwhm-mm).")
    ] = None,
    known_lesions: Annotated[
        int | None,
        typer.Option(min=0, help="Lesions known from CT/MR (MIBG-avid fraction for 131I-MIBG)."),
    ] = None,
    weight_kg: Annotated[float | None, typer.Option(help="Patient weight, kg (SUV).")] = None,
    height_cm: Annotated[float | None, typer.Option(help="Patient height, cm (SUL).")] = None,
    sex: Annotated[str | None, typer.Option(help="Patient sex, M or F (SUL).")] = None,
    strictness: StrictnessOpt = "strict",
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip HTML/PDF.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Lesions, uptake scores and therapy eligibility of a diagnostic scan."""
    from theranet.assessment import read_clinical_file, run_assessment

    try:
        facts = read_clinical_file(clinical) if clinical is not None else None
        with _progress("assessment", quiet) as progress:
            result = run_assessment(
                scan_dir, out, labels_path=labels, fwhm_mm=fwhm_mm,
                question=None if question == "none" else question, weight_kg=weight_kg,
                height_cm=height_cm, sex=sex, clinical=facts, fdg_dir=fdg,
                fdg_fwhm_mm=fdg_fwhm_mm, known_lesions=known_lesions, strictness=strictness,
                report=not no_report, progress=progress,
            )  # fmt: skip
    except (TheranetError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    suv = result.modality == "PET"
    t = Table("lesion", "site", "volume (mL)", "SUVmax" if suv else "max (MBq/mL)", "T/L",
              "Krenning-eq.", title=f"{result.tracer} {result.modality}: "
              f"{len(result.krenning)} lesions")  # fmt: skip
    for les, s in zip(result.lesions.lesions, result.krenning, strict=True):
        top = les.suv_max if suv else les.max_mbq_per_ml
        t.add_row(les.name, les.site, f"{les.volume_ml:.1f}", f"{top:.3g}",
                  "" if les.tlr is None else f"{les.tlr:.2f}", str(s.grade))  # fmt: skip
    console.print(t)
    dual = result.dual_tracer
    if dual is not None and dual.netpet is not None:
        console.print(f"NETPET (SSTR + FDG): {dual.netpet.grade}, {dual.netpet.suitability}")
    if result.eligibility is not None:
        el = result.eligibility
        console.print(f"{el.therapy} eligibility: {el.verdict}")
        for r in el.reasons:
            if r.passed is False:
                console.print(f"  not met: {r.rule}: {r.text}")
        if el.missing:
            console.print(
                f"  not supplied ({len(el.missing)}, give them with --clinical): "
                + ", ".join(el.missing)
            )
    for w in result.warnings:
        console.print(f"warning: {w}")
    if not quiet:
        console.print("wrote " + ", ".join(sorted(result.files)))


@app.command()
def pathway(
    tumour: Annotated[
        str | None, typer.Argument(help="Tumour type or alias (see --list): gep_net, ppgl, mtc...")
    ] = None,
    genotype: Annotated[str | None, typer.Option(help="Germline genotype (PPGL): sdhx...")] = None,
    site: Annotated[
        str | None, typer.Option(help="Tumour site (PPGL): adrenal, head_neck...")
    ] = None,
    ki67_percent: Annotated[
        float | None, typer.Option("--ki67-percent", "--ki67", help="Ki-67 index, %.")
    ] = None,
    calcitonin_pg_ml: Annotated[
        float | None, typer.Option(help="Serum calcitonin, pg/mL (medullary thyroid carcinoma).")
    ] = None,
    grade: Annotated[
        str | None, typer.Option(help="Grade or type: G1, G2, G3, typical, atypical, malignant.")
    ] = None,
    question: Annotated[str | None, typer.Option(help="Clinical question, e.g. therapy.")] = None,
    unavailable: Annotated[
        str | None, typer.Option(help="Tracers or modalities not available, comma-separated.")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="Site rule table (TOML) merged onto the shipped one.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    list_types: Annotated[
        bool, typer.Option("--list", help="List the tumour types and their inputs.")
    ] = False,
) -> None:
    """Imaging lines and therapy options for a tumour type, each with its source."""
    import json as _json

    from theranet import pathway as pw

    try:
        rules = pw.load_table(table) if table is not None else None
        if list_types:
            types = pw.tumour_types(rules)
            t = Table("tumour", "aliases", "genotypes", "sites", "grades", "questions",
                      title=f"Pathway rule table {pw.table_version(rules)}")  # fmt: skip
            for name, tt in types.items():
                cols = (tt.aliases, tt.genotypes, tt.sites, tt.grades, tt.questions)
                t.add_row(name, *(", ".join(c) for c in cols))
            console.print(t)
            return
        if tumour is None:
            raise typer.BadParameter("give a tumour type (or --list)", param_hint="TUMOUR")
        names = [u.strip() for u in (unavailable or "").split(",") if u.strip()]
        result = pw.recommend(
            tumour, genotype=genotype, site=site, ki67_percent=ki67_percent,
            calcitonin_pg_ml=calcitonin_pg_ml, grade=grade, question=question,
            unavailable=names, table=rules,
        )  # fmt: skip
    except (TheranetError, ValueError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(_json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        typer.echo(result.format_text(width=max(60, min(console.width, 120))))


@app.command()
def response(
    study_dirs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Study folders, one per date: a CT series and the lesions drawn on it "
            "(lesions.nii.gz with its sidecar, or one DICOM SEG/RTSTRUCT).",
        ),
    ] = None,
    measurements: Annotated[
        Path | None,
        typer.Option(
            help="Measurement table instead of images (CSV: patient_id, study_date, lesion_id, "
            "organ, is_node, role, longest_diameter_mm, short_axis_mm, status).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for the tables and plots.")
    ] = None,
    confirmation: Annotated[
        bool, typer.Option(help="Require confirmation of CR/PR (>= 4 weeks) for the best response.")
    ] = False,
    criteria: Annotated[
        str,
        typer.Option(
            help="recist (RECIST 1.1) or mrecist (measurements only: the target LD column "
            "holds the viable, arterially enhancing diameter).",
        ),
    ] = "recist",
    register: Annotated[
        str, typer.Option(help="Follow-up CT to baseline CT: rigid, or none (already aligned).")
    ] = "rigid",
    bone_measurable: Annotated[
        bool, typer.Option(help="Bone lesions have a soft-tissue component (measurable).")
    ] = False,
    patient_id: Annotated[
        str | None,
        typer.Option(help="Pseudonymous patient id of the image studies (and in the registry)."),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            help="Registry (SQLite file or URL) to join each lesion's dose and BED with its "
            "response.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """RECIST 1.1 per follow-up study and best overall response, from images or measurements."""
    from theranet.response.recist import assess_csv

    if bool(study_dirs) == (measurements is not None):
        raise typer.BadParameter(
            "give either study folders or --measurements FILE.csv", param_hint="STUDY_DIRS"
        )
    if criteria not in ("recist", "mrecist"):
        raise typer.BadParameter("use recist or mrecist", param_hint="--criteria")
    if criteria == "mrecist":
        if measurements is None:
            raise typer.BadParameter(
                "mRECIST needs the viable diameters: give --measurements", param_hint="--criteria"
            )
        _mrecist(measurements, out)
        return
    image_result = None
    try:
        if measurements is not None:
            patients = assess_csv(measurements, confirmation=confirmation)
        else:
            from theranet.response.studies import assess_studies

            with _progress("response", quiet) as progress:
                image_result = assess_studies(
                    study_dirs, patient_id=patient_id, register=register,
                    confirmation=confirmation, bone_measurable=bone_measurable,
                    progress=progress,
                )  # fmt: skip
            patients = {image_result.recist.patient_id: image_result.recist}
        joined = {}
        if registry is not None:
            from theranet.response.dose_response import dose_response

            with _registry(registry) as reg:
                known = set(reg.patients())
                for pid, p in patients.items():
                    if pid in known:
                        joined[pid] = dose_response(p, reg.cycles(pid))
                    else:
                        err_console.print(f"{pid}: not in the registry, no dose-response")
    except (TheranetError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    table = Table("patient", "study", "weeks", "sum (mm)", "vs baseline", "vs nadir",
                  "target", "non-target", "new", "overall", title="RECIST 1.1")  # fmt: skip

    def pct(x):
        return "" if x is None else f"{x:+.1f} %"

    for pid, p in patients.items():
        for s in p.studies:
            table.add_row(
                pid, s.study_date.isoformat(), f"{s.weeks_from_baseline:.1f}",
                "" if s.sum_mm is None else f"{s.sum_mm:.1f}", pct(s.change_from_baseline_pct),
                pct(s.change_from_nadir_pct), str(s.target or ""), str(s.non_target or ""),
                "yes" if s.new_lesions else "", str(s.overall or "baseline"),
            )  # fmt: skip
        table.add_row(pid, "best overall", "", "", "", "", "", "", "", str(p.best_overall))
    console.print(table)
    if image_result is not None and image_result.choi:
        choi = Table("study", "size", "density", "Choi", title="Choi")
        for d, c in image_result.choi:
            choi.add_row(d.isoformat(), pct(c.size_change_pct), pct(c.density_change_pct),
                         str(c.category))  # fmt: skip
        console.print(choi)
    for pid, dr in joined.items():
        console.print(_dose_response_table(pid, dr))
    if out is None:
        return
    _write_response(out, patients, image_result, joined)


def _mrecist(measurements: Path, out: Path | None) -> None:
    """mRECIST from a measurement table: printed, and written to OUT/response_mrecist.csv."""

    from theranet.response.mrecist import mrecist_from_measurements
    from theranet.response.table import read_measurements

    try:
        patients = mrecist_from_measurements(read_measurements(measurements))
    except (TheranetError, ValueError, FileNotFoundError) as exc:
        _fail(exc)
    t = Table("patient", "study", "viable sum (mm)", "vs baseline", "vs nadir", "target",
              "overall", title="mRECIST")  # fmt: skip
    rows = []
    for pid, (baseline, results) in patients.items():
        t.add_row(pid, "baseline", f"{baseline.sum_mm:.1f}", "", "", "", "")
        for r in results:
            nadir = "" if r.change_from_nadir_pct is None else f"{r.change_from_nadir_pct:+.1f} %"
            t.add_row(pid, r.study_date.isoformat(), f"{r.sum_mm:.1f}",
                      f"{r.change_from_baseline_pct:+.1f} %", nadir, str(r.target),
                      str(r.overall))  # fmt: skip
            rows.append({"patient_id": pid, "study_date": r.study_date.isoformat(),
                         "viable_sum_mm": r.sum_mm, "nadir_mm": r.nadir_mm,
                         "change_from_baseline_pct": r.change_from_baseline_pct,
                         "change_from_nadir_pct": r.change_from_nadir_pct,
                         "target": str(r.target), "overall": str(r.overall),
                         "reasons": "; ".join(r.reasons)})  # fmt: skip
    console.print(t)
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"wrote {_write_csv(out / 'response_mrecist.csv', rows)}")


def _dose_response_table(pid: str, dr) -> Table:
    def num(x, fmt="{:.2f}"):
        return "" if x is None else fmt.format(x)

    t = Table("lesion", "organ", "role", "cycles", "dose (Gy)", "BED (Gy)", "last change",
              "best change", title=f"Dose-response, {pid}")  # fmt: skip
    for r in dr.rows:
        t.add_row(r["lesion_id"], r["organ"], r["role"], str(r["cycles"]), num(r["dose_gy"]),
                  num(r["bed_gy"]), num(r["last_change_pct"], "{:+.1f} %"),
                  num(r["best_change_pct"], "{:+.1f} %"))  # fmt: skip
    return t


def _write_csv(path: Path, rows, columns=None) -> Path:
    """``rows`` (dicts) as a CSV file, written atomically; columns default to the
    first row's keys."""
    import csv as _csv

    from theranet.io._atomic import atomic_paths

    fields = columns or (list(rows[0]) if rows else ["patient_id"])
    with atomic_paths([path]) as (tmp,):
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = _csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    return path


def _write_response(out: Path, patients, image_result, joined) -> None:
    """Tables and plots of `theranet response`, each written atomically."""

    from theranet.io._atomic import atomic_paths
    from theranet.response.dose_response import DOSE_RESPONSE_COLUMNS, dose_response_figure
    from theranet.response.plots import spider_figure, waterfall_figure

    out.mkdir(parents=True, exist_ok=True)
    tables = [
        ("response_studies.csv", [r for p in patients.values() for r in p.study_rows()], None),
        ("response_lesions.csv", [r for p in patients.values() for r in p.lesion_rows()], None),
    ]
    if image_result is not None:
        tables += [
            ("response_measurements.csv", image_result.measurement_rows(), None),
            ("response_tracking.csv", list(image_result.tracking), None),
            ("response_choi.csv", image_result.choi_rows(), None),
        ]
    for pid, dr in joined.items():
        rows = [{"patient_id": pid, **r} for r in dr.rows]
        tables.append((f"dose_response_{pid}.csv", rows, ["patient_id", *DOSE_RESPONSE_COLUMNS]))
    written = [_write_csv(out / name, rows, columns) for name, rows, columns in tables]
    figures = [("waterfall.png", waterfall_figure(patients))]
    figures += [(f"spider_{pid}.png", spider_figure(p)) for pid, p in patients.items()]
    figures += [(f"dose_response_{pid}.png", dose_response_figure(dr.rows))
                for pid, dr in joined.items()]  # fmt: skip
    for name, fig in figures:
        with atomic_paths([out / name]) as (tmp,):
            fig.savefig(tmp, format="png")
        written.append(out / name)
    console.print("wrote " + ", ".join(str(p) for p in written))


registry_app = typer.Typer(help="The treatment registry: patients, cycles, doses, BED.")
app.add_typer(registry_app, name="registry")


@registry_app.command("list")
def registry_list(registry: RegistryOpt = None) -> None:
    """Patients in the registry with their cycles."""
    from theranet.registry.cli import list_patients

    try:
        console.print(list_patients(_registry(registry)))
    except (TheranetError, ValueError) as exc:
        _fail(exc)


@registry_app.command("show")
def registry_show(
    patient_id: Annotated[str, typer.Argument(help="Pseudonymous patient id.")],
    registry: RegistryOpt = None,
) -> None:
    """One patient's cycles, doses per cycle and cumulative dose and BED."""
    from theranet.registry.cli import show_patient

    try:
        console.print(show_patient(_registry(registry), patient_id))
    except (TheranetError, ValueError) as exc:
        _fail(exc)


@registry_app.command("export")
def registry_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.csv or .json).")],
    patient_id: Annotated[
        str | None, typer.Argument(help="Pseudonymous patient id (default: all).")
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """Export the dose rows of one patient or all (CSV or JSON)."""
    from theranet.registry.cli import export

    try:
        console.print(export(_registry(registry), out, patient_id=patient_id))
    except (TheranetError, ValueError) as exc:
        _fail(exc)


if __name__ == "__main__":  # pragma: no cover
    app()
