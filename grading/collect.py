"""``collect``: unpack an LMS bulk download into nbgrader's ``submitted/`` folder, safely.

Accepted layout of the LMS download (a zip, as Canvas/Moodle-style bulk downloads give):
one inner zip per submission, named ``<student_id>__<timestamp>.zip`` (timestamp
``YYYYmmddTHHMMSS`` or ``YYYY-mm-dd-HH-MM-SS``) or ``<student_id>.zip`` (then the entry's own
modification time is used). Each inner zip holds the student's ``hw2`` folder content
(``hw2.ipynb``, ``loops/*.wav``, ``checkpoint.pt``), optionally under one top-level folder.

What is left out, with a line in the collect log (and in that student's feedback): members with
absolute paths or ``..`` (path traversal), symlinks and files larger than the per-file cap are
skipped (the rest of the submission is unpacked); an inner zip whose unpacked size passes the
per-submission cap (a zip bomb) or that cannot be read is refused whole.
Several submissions of one student: the latest timestamp wins; the others are logged. A student
whose latest submission is the one already collected is left as it is (grades kept); a newer
one replaces it and is autograded and scored anew.
Student ids are normalised to ``[A-Za-z0-9_.-]`` (accents dropped, other characters to ``_``);
the mapping is logged, and two ids that normalise alike are kept apart with a suffix.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

ASSIGNMENT = "hw2"
MAX_FILE_BYTES = 50 * 1024 * 1024          # one file inside a submission
MAX_SUBMISSION_BYTES = 200 * 1024 * 1024   # everything a submission unpacks to
SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]")
NAME_PATTERN = re.compile(r"^(?P<student>.+?)(?:__(?P<stamp>\d{8}T\d{6}|\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}))?\.zip$")


@dataclass
class CollectLog:
    """What ``collect`` did: accepted submissions, refusals and notes, one line each."""

    accepted: dict[str, str] = field(default_factory=dict)   # student id -> source entry
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"accepted": self.accepted, "refused": self.refused, "notes": self.notes},
                                   indent=2, ensure_ascii=False), encoding="utf-8")

    def lines(self) -> list[str]:
        out = [f"accepted {sid} <- {src}" for sid, src in sorted(self.accepted.items())]
        return out + [f"refused  {r}" for r in self.refused] + [f"note     {n}" for n in self.notes]


def safe_student_id(raw: str) -> str:
    """An nbgrader-safe id: ASCII letters, digits, ``_ . -`` only (accents stripped, rest -> ``_``)."""
    ascii_form = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    cleaned = SAFE_ID.sub("_", ascii_form).strip("._-")
    if not cleaned:
        cleaned = "student"
    return cleaned[:64]


def _timestamp(stamp: str | None, info: zipfile.ZipInfo) -> datetime:
    if stamp:
        fmt = "%Y%m%dT%H%M%S" if "T" in stamp else "%Y-%m-%d-%H-%M-%S"
        return datetime.strptime(stamp, fmt).replace(tzinfo=timezone.utc)
    return datetime(*info.date_time, tzinfo=timezone.utc)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def _member_problem(info: zipfile.ZipInfo, max_bytes: int | None = None) -> str | None:
    """Why a zip member must not be extracted (``max_bytes``: size cap, default the per-file one), or None."""
    name = info.filename
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or re.match(r"^[A-Za-z]:", name):
        return f"absolute path {name!r}"
    if ".." in path.parts:
        return f"path traversal {name!r}"
    if _is_symlink(info):
        return f"symlink {name!r}"
    limit = MAX_FILE_BYTES if max_bytes is None else max_bytes
    if info.file_size > limit:
        return f"file {name!r} is {info.file_size} bytes (limit {limit})"
    return None


def _strip_common_root(names: list[str]) -> str:
    """The single top-level folder all members share (to be dropped), or ''."""
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    if len(tops) == 1:
        top = tops.pop()
        if all(len(PurePosixPath(n).parts) > 1 or n.endswith("/") for n in names):
            return top
    return ""


def extract_submission(data: bytes, dest: Path, label: str) -> tuple[list[str], list[str]]:
    """Unpack one student's inner zip into ``dest``.

    Returns ``(refusals, skipped)``: a non-empty ``refusals`` means nothing was written (all checks
    run before anything is); ``skipped`` lists the unsafe members left out of an accepted submission.
    """
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
        infos = inner.infolist()
    except zipfile.BadZipFile as exc:
        return [f"{label}: not a readable zip ({exc})"], []
    total = sum(i.file_size for i in infos)
    if total > MAX_SUBMISSION_BYTES:
        return [f"{label}: unpacks to {total} bytes (limit {MAX_SUBMISSION_BYTES})"], []
    skipped = [p for p in (_member_problem(i) for i in infos) if p]
    files = [i for i in infos if not i.is_dir() and _member_problem(i) is None]
    root = _strip_common_root([i.filename for i in files])
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        for info in files:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            rel = PurePosixPath(*parts[1:]) if root and parts[0] == root else PurePosixPath(*parts)
            target = staging.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with inner.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
            if target.stat().st_size > MAX_FILE_BYTES:  # the header lied about the size
                raise ValueError(f"{label}: {rel} is larger than {MAX_FILE_BYTES} bytes once unpacked")
    except (ValueError, zipfile.BadZipFile, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        return [str(exc) if isinstance(exc, ValueError) else f"{label}: could not unpack ({exc})"], []
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(dest)
    return [], skipped


def collect(lms_zip: Path, course_dir: Path, assignment: str = ASSIGNMENT) -> CollectLog:
    """Unpack ``lms_zip`` into ``course_dir/submitted/<student>/<assignment>/``.

    Existing submissions of students not in this download are left alone; a student in it
    is replaced by their latest submission. The log is also written to
    ``course_dir/logs/collect.json``.
    """
    lms_zip = Path(lms_zip)
    if not lms_zip.exists():
        raise FileNotFoundError(f"{lms_zip}: LMS download not found")
    log = CollectLog()
    try:
        outer = zipfile.ZipFile(lms_zip)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{lms_zip}: not a zip file ({exc})") from exc

    candidates: dict[str, list[tuple[datetime, zipfile.ZipInfo, str]]] = {}
    for info in outer.infolist():
        if info.is_dir():
            continue
        problem = _member_problem(info, max_bytes=MAX_SUBMISSION_BYTES)
        name = PurePosixPath(info.filename).name
        if problem:
            log.refused.append(f"{info.filename}: {problem}")
            continue
        match = NAME_PATTERN.match(name)
        if not match:
            log.refused.append(f"{info.filename}: not a '<student_id>[__<timestamp>].zip' submission")
            continue
        raw_id = match.group("student")
        try:
            when = _timestamp(match.group("stamp"), info)
        except ValueError:
            log.refused.append(f"{info.filename}: unreadable timestamp")
            continue
        candidates.setdefault(raw_id, []).append((when, info, raw_id))

    used: dict[str, str] = {}
    for raw_id in sorted(candidates):
        versions = sorted(candidates[raw_id], key=lambda v: (v[0], v[1].filename))
        when, info, _ = versions[-1]
        for older in versions[:-1]:
            log.notes.append(f"{raw_id}: older submission {older[1].filename} ignored (latest wins: {info.filename})")
        sid = safe_student_id(raw_id)
        if sid in used and used[sid] != raw_id:
            k = 2
            while f"{sid}_{k}" in used:
                k += 1
            sid = f"{sid}_{k}"
        used[sid] = raw_id
        if sid != raw_id:
            log.notes.append(f"student id {raw_id!r} stored as {sid!r}")
        dest = course_dir / "submitted" / sid / assignment
        previous = dest / ".collected.json"
        if previous.is_file() and json.loads(previous.read_text(encoding="utf-8")).get("source") == info.filename:
            log.accepted[sid] = info.filename
            log.notes.append(f"{sid}: unchanged since the last collect ({info.filename}); kept as graded")
            continue
        refusals, skipped = extract_submission(outer.read(info), dest, info.filename)
        if refusals:
            log.refused.extend(refusals)
            continue
        log.notes.extend(f"{sid}: skipped {s}" for s in skipped)
        for stale in (course_dir / "logs" / "autograde" / f"{sid}.json", course_dir / "scores" / f"{sid}.json"):
            stale.unlink(missing_ok=True)  # a new submission is graded anew (a TA's override still stands)
        (dest / "timestamp.txt").write_text(when.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), encoding="utf-8")
        (dest / ".collected.json").write_text(json.dumps({"source": info.filename, "student_raw_id": raw_id,
                                                           "timestamp": when.isoformat(), "skipped": skipped}),
                                              encoding="utf-8")
        log.accepted[sid] = info.filename
    log.write(course_dir / "logs" / "collect.json")
    return log
