"""The treatment registry: record each therapy cycle's dosimetry, read it back, export it.

A :class:`Registry` is a SQLite file by default and any SQLAlchemy URL by option
(``postgresql+psycopg://user@host/db`` with the ``postgres`` extra installed).
Opening one creates the schema, or upgrades an older one, with the migrations
shipped in the package.

Each :meth:`Registry.record_cycle` is one transaction: a cycle is recorded with
all its time points and region rows, or not at all, also when the process is
killed half-way (SQLite's journal, PostgreSQL's transaction). SQLite
connections enforce foreign keys and keep SQLite's default rollback journal,
which also works on network file systems (WAL does not).

Examples
--------
>>> import datetime as dt, tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with Registry(path=folder / "registry.sqlite") as reg:
...     rec = reg.record_cycle(
...         "NET-0001", tracer="177Lu-DOTATATE", nuclide="Lu-177",
...         administered_activity_mbq=7400.0,
...         administration=dt.datetime(2024, 1, 8, 10, 30), times_h=[4, 24, 96, 168],
...         regions=[dict(region="kidneys", kind="organ", volume_ml=310.0, mass_g=325.0,
...                       tia_mbq_h=9.1e3, tia_sd_mbq_h=6.0e2, mean_dose_gy=3.2,
...                       dose_sd_gy=0.3, model="biexp")],
...         methods=[("integration", "fit")])
...     (rec.number, rec.regions["kidneys"].mean_dose_gy)
(1, 3.2)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, insert, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, selectinload

from theranet._version import __version__
from theranet.registry import _export, _migrate
from theranet.registry.models import Cycle, Patient, Region, RegionDose, TimePoint, Treatment
from theranet.registry.records import (
    CycleRecord,
    RegionRecord,
    RegistryError,
    check_activity,
    check_methods,
    check_number,
    check_patient_id,
    check_regions,
    check_text,
    check_times,
    join_administration,
    split_administration,
)

__all__ = ["Registry", "default_path"]

logger = logging.getLogger(__name__)

#: Test hook, ``None`` in normal use: when set, :meth:`Registry.record_cycle`
#: calls it inside its transaction, after every row of the cycle is written and
#: before the commit (``tests/registry`` kills the process there).
_before_commit: Callable[[], None] | None = None


def default_path() -> Path:
    """The default registry file: ``$XDG_DATA_HOME/theranet/registry.sqlite``.

    ``XDG_DATA_HOME`` defaults to ``~/.local/share`` (and is ignored when not an
    absolute path, as the XDG specification says).
    """
    base = os.environ.get("XDG_DATA_HOME", "")
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "theranet" / "registry.sqlite"


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions (SQLAlchemy's recipe).

    Reads then see one snapshot, DDL is transactional, and a connection with the
    ``theranet_write`` execution option takes the write lock at ``BEGIN
    IMMEDIATE`` (so reading the last cycle number and writing the next one
    cannot interleave with another writer).
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("theranet_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Registry:
    """A treatment registry in a SQLite file or on a database server.

    Parameters
    ----------
    url : str, optional
        Any SQLAlchemy URL, e.g. ``postgresql+psycopg://user:secret@host/theranet``
        (``postgresql://`` is taken as psycopg 3) or ``sqlite:///path.sqlite``.
    path : path-like, optional
        A SQLite file, created with its folder if absent. Give ``url`` or
        ``path``, not both; with neither, :func:`default_path` is used.

    Raises
    ------
    RegistryError
        For both ``url`` and ``path``, a malformed URL, a missing database driver,
        a server that cannot be reached, or a database written by a newer theranet.

    Notes
    -----
    The registry stores a pseudonymous patient identifier, never a name; keep
    the key that maps it to the patient elsewhere.
    """

    def __init__(self, url: str | None = None, path: Path | str | None = None) -> None:
        if url is not None and path is not None:
            raise RegistryError(
                "url", "given together with path", url, "give url or path, not both"
            )
        if url is None:
            file = Path(path).expanduser() if path is not None else default_path()
            file.parent.mkdir(parents=True, exist_ok=True)
            parsed = URL.create("sqlite+pysqlite", database=str(file))
        else:
            try:
                parsed = make_url(url)
            except ArgumentError as exc:
                raise RegistryError(
                    "url",
                    f"is not a database URL ({exc})",
                    url,
                    "write it as dialect+driver://user:password@host/database",
                ) from None
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed.render_as_string(hide_password=True)
        self._engine = self._create_engine(parsed)
        self._writer = self._engine.execution_options(theranet_write=True)
        try:
            _migrate.upgrade(self._engine)
        except CommandError as exc:
            self._engine.dispose()
            raise RegistryError(
                "url",
                f"holds a registry schema this theranet {__version__} does not know ({exc})",
                self.url,
                "upgrade theranet to the version that wrote it",
            ) from None
        except OperationalError as exc:
            self._engine.dispose()
            raise RegistryError(
                "url",
                f"cannot be opened ({exc.orig})",
                self.url,
                "check the file permissions, or that the server is running and the role can log in",
            ) from None

    def _create_engine(self, url: URL) -> Engine:
        try:
            if url.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"timeout": 30.0})
                _sqlite_transactions(engine)
                return engine
            return create_engine(url, pool_pre_ping=True)
        except ImportError as exc:
            raise RegistryError(
                "url",
                f"needs a database driver that is not installed ({exc.name})",
                self.url,
                "for PostgreSQL: pip install 'theranet[postgres]'",
            ) from None
        except ArgumentError as exc:
            raise RegistryError(
                "url",
                f"names an unknown database ({exc})",
                self.url,
                "use sqlite:///FILE or postgresql+psycopg://user@host/database",
            ) from None

    # -- context and lifetime ------------------------------------------------------

    def close(self) -> None:
        """Close the connections of this registry."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    @contextmanager
    def _session(self, *, write: bool = False) -> Iterator[Session]:
        with Session(self._writer if write else self._engine, expire_on_commit=False) as s:
            with s.begin():
                yield s

    # -- writing -------------------------------------------------------------------

    def record_cycle(
        self,
        patient_id: str,
        *,
        tracer: str,
        nuclide: str,
        administered_activity_mbq: float,
        administration: dt.datetime,
        times_h: Iterable[float],
        regions: Iterable[Any] | Mapping[str, Any],
        methods: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        software_version: str | None = None,
        new_treatment: bool = False,
    ) -> CycleRecord:
        """Record one therapy cycle and its dosimetry, all or nothing.

        The cycle joins the patient's latest treatment (the first one is
        created) and is numbered after that treatment's previous cycle.

        Parameters
        ----------
        patient_id : str
            Pseudonymous identifier (1-64 letters, digits, ``. _ : -``); a new
            one registers the patient.
        tracer, nuclide : str
            The radiopharmaceutical (``"177Lu-DOTATATE"``) and its nuclide.
        administered_activity_mbq : float
            Positive and finite.
        administration : datetime
            Naive (local time) or timezone-aware, like the treatment's other
            cycles; read back as given.
        times_h : iterable of float
            Imaging time points, hours after the administration.
        regions : iterable or mapping
            Rows with the :class:`theranet.pipeline.RegionDose` attributes
            (objects or mappings; ``eqd2_gy`` too), or ``DosimetryResult.regions``.
            Region names are unique within a cycle and keep their kind across
            the patient's cycles.
        methods : iterable of (str, str) or mapping
            Each dosimetry step and the choice made (``DosimetryResult.methods``).
        software_version : str, optional
            Version of the software that computed the doses; this theranet's by
            default.
        new_treatment : bool
            Start a new treatment (a new course, or another radiopharmaceutical)
            with this cycle as its cycle 1.

        Returns
        -------
        CycleRecord
            The cycle as stored.

        Raises
        ------
        RegistryError
            For an invalid argument, an administration not after the previous
            cycle of the treatment, a tracer other than the treatment's, a
            duplicate region or a region whose kind changed. Nothing is recorded.
        """
        pid = check_patient_id(patient_id)
        tracer = check_text("tracer", tracer, max_len=64)
        nuclide = check_text("nuclide", nuclide, max_len=32)
        activity = check_activity(administered_activity_mbq)
        wall, offset = split_administration(administration)
        times = check_times(times_h)
        rows = check_regions(regions)
        steps = check_methods(methods)
        version = check_text("software_version", software_version or __version__, max_len=64)
        try:
            with self._session(write=True) as s:
                patient = s.scalar(
                    select(Patient).where(Patient.pseudonym == pid).with_for_update()
                )
                if patient is None:
                    patient = Patient(pseudonym=pid)
                    s.add(patient)
                    s.flush()
                treatment = s.scalar(
                    select(Treatment)
                    .where(Treatment.patient_id == patient.id)
                    .order_by(Treatment.number.desc())
                    .limit(1)
                )
                previous = None
                if treatment is None or new_treatment:
                    treatment = Treatment(
                        patient_id=patient.id,
                        number=1 if treatment is None else treatment.number + 1,
                        radiopharmaceutical=tracer,
                        started_on=wall.date(),
                    )
                    s.add(treatment)
                    s.flush()
                else:
                    if treatment.radiopharmaceutical != tracer:
                        raise RegistryError(
                            "tracer",
                            f"differs from {treatment.radiopharmaceutical!r} of treatment "
                            f"{treatment.number}",
                            tracer,
                            "pass new_treatment=True to start a treatment with this tracer",
                        )
                    previous = s.scalar(
                        select(Cycle)
                        .where(Cycle.treatment_id == treatment.id)
                        .order_by(Cycle.number.desc())
                        .limit(1)
                    )
                if previous is not None:
                    _check_after(previous, administration, treatment.number)
                cycle = Cycle(
                    treatment_id=treatment.id,
                    number=1 if previous is None else previous.number + 1,
                    administered_at=wall,
                    administered_utc_offset_min=offset,
                    radiopharmaceutical=tracer,
                    nuclide=nuclide,
                    administered_activity_mbq=activity,
                    software_version=version,
                    methods=[list(m) for m in steps],
                )
                s.add(cycle)
                s.flush()
                if times:
                    s.execute(
                        insert(TimePoint),
                        [
                            {"cycle_id": cycle.id, "position": i, "time_after_injection_h": t}
                            for i, t in enumerate(times)
                        ],
                    )
                region_ids = self._region_ids(s, patient.id, rows)
                if rows:
                    s.execute(insert(RegionDose), _dose_rows(cycle.id, region_ids, rows))
                if _before_commit is not None:
                    _before_commit()
                number, treatment_number = cycle.number, treatment.number
        except IntegrityError as exc:
            raise RegistryError(
                "patient_id",
                f"the database refused the cycle ({exc.orig})",
                pid,
                "if another process recorded a cycle of this patient at the same time, "
                "record the cycle again",
            ) from None
        logger.info("recorded cycle %d of treatment %d of %s", number, treatment_number, pid)
        return self.cycle(pid, number, treatment=treatment_number)

    @staticmethod
    def _region_ids(s: Session, patient_id: int, rows: list[RegionRecord]) -> dict[str, int]:
        known = {
            r.name: r
            for r in s.scalars(
                select(Region).where(
                    Region.patient_id == patient_id, Region.name.in_([r.region for r in rows])
                )
            )
        }
        for i, row in enumerate(rows):
            region = known.get(row.region)
            if region is not None and region.kind != row.kind:
                raise RegistryError(
                    f"regions[{i}].kind",
                    f"differs from the kind {region.kind!r} recorded for {row.region!r} "
                    "in earlier cycles",
                    row.kind,
                    "keep a region's kind across cycles, or give the new region another name",
                )
        new = [Region(patient_id=patient_id, name=r.region, kind=r.kind) for r in rows]
        new = [r for r in new if r.name not in known]
        s.add_all(new)
        s.flush()
        known.update({r.name: r for r in new})
        return {name: r.id for name, r in known.items()}

    def set_bed(
        self,
        patient_id: str,
        cycle_number: int,
        region: str,
        bed_gy: float,
        eqd2_gy: float | None = None,
        *,
        treatment: int | None = None,
    ) -> RegionRecord:
        """Store the biologically effective dose (and EQD2) of one region in one cycle.

        Parameters
        ----------
        patient_id : str
        cycle_number : int
        region : str
            A region recorded in that cycle.
        bed_gy : float
            BED, Gy, finite and not negative.
        eqd2_gy : float, optional
            Equivalent dose in 2-Gy fractions, Gy; ``None`` clears it.
        treatment : int, optional
            The treatment number; the patient's latest by default.

        Returns
        -------
        RegionRecord
            The updated row.
        """
        bed = check_number("bed_gy", bed_gy)
        eqd2 = check_number("eqd2_gy", eqd2_gy, optional=True)
        with self._session(write=True) as s:
            cycle = self._find_cycle(s, patient_id, cycle_number, treatment)
            row = next((d for d in cycle.doses if d.region.name == region), None)
            if row is None:
                names = [d.region.name for d in cycle.doses]
                raise RegistryError(
                    "region",
                    f"is not recorded in cycle {cycle_number}",
                    region,
                    f"use one of {names}",
                )
            row.bed_gy, row.eqd2_gy = bed, eqd2
            s.flush()
            return _region_record(row)

    # -- reading -------------------------------------------------------------------

    def patients(self) -> list[str]:
        """Pseudonymous identifiers of the patients recorded, sorted."""
        with self._session() as s:
            return list(s.scalars(select(Patient.pseudonym).order_by(Patient.pseudonym)))

    def cycles(self, patient_id: str) -> list[CycleRecord]:
        """Every cycle of a patient, by treatment then cycle number.

        Raises
        ------
        RegistryError
            For a patient not in the registry.
        """
        with self._session() as s:
            patient = self._patient(s, patient_id)
            return [_cycle_record(patient.pseudonym, c) for c in self._load_cycles(s, [patient])]

    def cycle(self, patient_id: str, number: int, *, treatment: int | None = None) -> CycleRecord:
        """One cycle of a patient's treatment (the latest treatment by default)."""
        with self._session() as s:
            return _cycle_record(patient_id, self._find_cycle(s, patient_id, number, treatment))

    def export(
        self,
        patient_id: str | None,
        path: Path | str,
        format: Literal["csv", "json"] | None = None,
    ) -> Path:
        """Write the cycles of one patient, or of all with ``None``, to a file.

        Parameters
        ----------
        patient_id : str or None
        path : path-like
            Written atomically (a temporary file, then a rename); its folder is
            created if absent.
        format : {"csv", "json"}, optional
            From the suffix of ``path`` by default. CSV has one row per region
            per cycle (columns in ``theranet.registry._export.CSV_COLUMNS``); JSON
            has every field, methods included.

        Returns
        -------
        Path
        """
        path = Path(path)
        fmt = format or path.suffix.lower().lstrip(".")
        if fmt not in ("csv", "json"):
            raise RegistryError(
                "format",
                "is not a known export format",
                format or path.name,
                "use format='csv' or 'json', or a .csv/.json file name",
            )
        with self._session() as s:
            if patient_id is None:
                patients = list(s.scalars(select(Patient).order_by(Patient.pseudonym)))
            else:
                patients = [self._patient(s, patient_id)]
            names = {p.id: p.pseudonym for p in patients}
            records = [
                _cycle_record(names[c.treatment.patient_id], c)
                for c in self._load_cycles(s, patients)
            ]
        text = _export.to_csv(records) if fmt == "csv" else _export.to_json(records)
        return _export.atomic_write_text(path, text)

    # -- queries -------------------------------------------------------------------

    def _patient(self, s: Session, patient_id: str) -> Patient:
        patient = s.scalar(select(Patient).where(Patient.pseudonym == patient_id))
        if patient is None:
            raise RegistryError(
                "patient_id",
                "is not in the registry",
                patient_id,
                "check the pseudonym; Registry.patients() (`theranet registry list`) "
                "lists those recorded",
                source=self.url,
            )
        return patient

    @staticmethod
    def _load_cycles(s: Session, patients: list[Patient]) -> list[Cycle]:
        order = {p.id: i for i, p in enumerate(patients)}
        cycles = s.scalars(
            select(Cycle)
            .join(Cycle.treatment)
            .where(Treatment.patient_id.in_(order))
            .order_by(Treatment.number, Cycle.number)
            .options(
                selectinload(Cycle.time_points),
                selectinload(Cycle.doses).selectinload(RegionDose.region),
            )
        ).all()
        return sorted(cycles, key=lambda c: order[c.treatment.patient_id])

    def _find_cycle(self, s: Session, patient_id: str, number: int, treatment: int | None) -> Cycle:
        patient = self._patient(s, patient_id)
        query = select(Treatment).where(Treatment.patient_id == patient.id)
        if treatment is None:
            query = query.order_by(Treatment.number.desc()).limit(1)
        else:
            query = query.where(Treatment.number == treatment)
        course = s.scalar(query)
        if course is None:
            raise RegistryError(
                "treatment",
                "is not recorded for this patient",
                treatment,
                "leave it out for the latest treatment",
            )
        cycle = s.scalar(
            select(Cycle)
            .where(Cycle.treatment_id == course.id, Cycle.number == number)
            .options(
                selectinload(Cycle.time_points),
                selectinload(Cycle.doses).selectinload(RegionDose.region),
            )
        )
        if cycle is None:
            numbers = [c.number for c in course.cycles]
            raise RegistryError(
                "cycle_number",
                f"is not recorded in treatment {course.number}",
                number,
                f"recorded cycles: {numbers}",
            )
        return cycle


def _check_after(previous: Cycle, administration: dt.datetime, treatment: int) -> None:
    before = join_administration(previous.administered_at, previous.administered_utc_offset_min)
    if (before.tzinfo is None) != (administration.tzinfo is None):
        raise RegistryError(
            "administration",
            f"is {'naive' if administration.tzinfo is None else 'timezone-aware'} but cycle "
            f"{previous.number} of treatment {treatment} was not",
            administration,
            "give every cycle's administration with, or every one without, a timezone",
        )
    if administration == before:
        raise RegistryError(
            "administration",
            f"is that of cycle {previous.number} of treatment {treatment}, already recorded",
            administration,
            "nothing to do if it is the same cycle; otherwise correct the administration time",
        )
    if administration < before:
        raise RegistryError(
            "administration",
            f"is before that of cycle {previous.number} of treatment {treatment} "
            f"({before.isoformat()})",
            administration,
            "record cycles in order with their true administration times, or pass "
            "new_treatment=True for another course",
        )


def _dose_rows(cycle_id: int, region_ids: dict[str, int], rows: list[RegionRecord]) -> list[dict]:
    return [
        {
            "cycle_id": cycle_id,
            "region_id": region_ids[r.region],
            "position": i,
            "volume_ml": r.volume_ml,
            "mass_g": r.mass_g,
            "tia_mbq_h": r.tia_mbq_h,
            "tia_sd_mbq_h": r.tia_sd_mbq_h,
            "mean_dose_gy": r.mean_dose_gy,
            "dose_sd_gy": r.dose_sd_gy,
            "bed_gy": r.bed_gy,
            "eqd2_gy": r.eqd2_gy,
            "model": r.model,
            "method": r.method,
        }
        for i, r in enumerate(rows)
    ]


def _region_record(d: RegionDose) -> RegionRecord:
    return RegionRecord(
        region=d.region.name,
        kind=d.region.kind,
        volume_ml=d.volume_ml,
        mass_g=d.mass_g,
        tia_mbq_h=d.tia_mbq_h,
        tia_sd_mbq_h=d.tia_sd_mbq_h,
        mean_dose_gy=d.mean_dose_gy,
        dose_sd_gy=d.dose_sd_gy,
        model=d.model,
        method=d.method,
        bed_gy=d.bed_gy,
        eqd2_gy=d.eqd2_gy,
    )


def _cycle_record(patient_id: str, c: Cycle) -> CycleRecord:
    return CycleRecord(
        patient_id=patient_id,
        treatment=c.treatment.number,
        number=c.number,
        tracer=c.radiopharmaceutical,
        nuclide=c.nuclide,
        administered_activity_mbq=c.administered_activity_mbq,
        administration=join_administration(c.administered_at, c.administered_utc_offset_min),
        times_h=tuple(t.time_after_injection_h for t in c.time_points),
        regions={d.region.name: _region_record(d) for d in c.doses},
        methods=tuple((m[0], m[1]) for m in c.methods),
        software_version=c.software_version,
        created_at=c.created_at_utc.replace(tzinfo=dt.UTC),
    )


def open_registry(where: str | Path | None = None) -> Registry:
    """A registry from what a user types: None (the default file), a database URL
    (anything with ``://``) or a SQLite file path."""
    if where is None:
        return Registry()
    text = str(where)
    return Registry(url=text) if "://" in text else Registry(path=Path(text))
