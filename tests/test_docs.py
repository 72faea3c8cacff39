"""The documentation ships with the code: docs/algorithm.md's sections are the ones
cited, README.md stays a short guide that names what is in the package and every
configuration key, links between the documents resolve, and nothing in the project
speaks of how it was built."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "algorithm.md"
README = ROOT / "README.md"
CITATION = re.compile(r"docs/algorithm\.md (§\d+(?:[–,] ?§\d+)*)")
#: The documents README.md points to for the topics it only summarises.
GUIDES = ("cluster", "operations", "benchmarks", "learning", "errors")


def cited_files() -> list[Path]:
    patterns = (
        "rllib_mwm/**/*.py",
        "tests/*.py",
        "scripts/*.py",
        "tuned_examples/**/*",
        "docs/**/*.md",
    )
    files = [p for pattern in patterns for p in ROOT.glob(pattern) if p.is_file()]
    return [*(p for p in files if p != DOC), README, DOC]


def readme_section(title: str) -> str:
    readme = README.read_text()
    assert f"\n## {title}\n" in readme, f"README.md lacks the section {title!r}"
    return readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_citation_names_a_section_of_the_algorithm_document():
    sections = set(re.findall(r"^## (\d+)\. ", DOC.read_text(), re.MULTILINE))
    assert sections == {str(n) for n in range(1, 9)}
    cited = {}
    for path in cited_files():
        for match in CITATION.finditer(path.read_text()):
            for number in re.findall(r"§(\d+)", match.group(1)):
                cited.setdefault(number, path)
    assert cited, "no citation found"
    missing = {
        n: str(p.relative_to(ROOT)) for n, p in cited.items() if n not in sections
    }
    assert not missing


def test_no_citation_of_a_file_users_do_not_have():
    stale = re.compile("MWM" + r"_SPEC|\b[Ss]pec §")
    offenders = [
        str(path.relative_to(ROOT))
        for path in cited_files()
        if path != Path(__file__).resolve() and stale.search(path.read_text())
    ]
    assert not offenders


def test_readme_lists_the_differences_from_the_released_code():
    section = readme_section("Differences from the released code")
    for topic in ("bf16", "rollout_fragment_length", "Meta-world v3"):
        assert topic in section, topic


def test_readme_is_a_guide_of_at_most_300_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_points_to_each_guide_and_each_guide_exists():
    readme = README.read_text()
    for name in GUIDES:
        assert (ROOT / "docs" / f"{name}.md").is_file(), name
        assert f"(docs/{name}.md" in readme, f"README.md does not link docs/{name}.md"


def test_readme_package_map_names_every_module():
    section = readme_section("What is in the package")
    modules = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "rllib_mwm").rglob("*.py")
    )
    missing = [name for name in modules if f"`{name}`" not in section]
    assert not missing, f"README's package map lacks {missing}"


def test_readme_configuration_table_names_every_key():
    from rllib_mwm.rllib.config import MWM_DEFAULTS

    section = readme_section("Configuration")
    missing = [key for key in MWM_DEFAULTS if f"`{key}`" not in section]
    for key, value in MWM_DEFAULTS.items():
        if isinstance(value, dict):
            missing += [f"{key}.{sub}" for sub in value if f"`{sub}`" not in section]
    assert not missing, f"README's configuration table lacks {missing}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces
    to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_documents_resolve():
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for path in [README, *sorted((ROOT / "docs").glob("**/*.md"))]:
        for target in link.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
                if anchor not in {github_anchor(h) for h in headings}:
                    broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken


#: How the project was built is not part of it: work-tracker numbers, commit
#: hashes in prose, numbered work periods, a specification users do not have.
BUILD_HISTORY = re.compile(
    "|".join(
        (
            r"\bissues?\s*#?\d+",
            r"\b(?:pr|pull request)\s*#\d+",
            r"\bcommit\s+[0-9a-f]{7,40}\b",
            r"\bsessions?[\s-]+\d+",
            r"\bperiods?\s+\d+",
            r"\bthe\s+spec\b",
        )
    ),
    re.IGNORECASE,
)
HISTORY_PATHS = ("README.md", "docs", "rllib_mwm", "scripts", "tuned_examples", "tests")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".sh", ".txt"}


def project_text_files() -> list[Path]:
    """The tracked (and new, not ignored) text files under HISTORY_PATHS."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"]
            + ["--", *HISTORY_PATHS],
            cwd=ROOT,
            capture_output=True,
            check=True,
            text=True,
        ).stdout.split("\0")
        paths = [ROOT / name for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # Not a git checkout.
        paths = [README] + [
            path
            for folder in HISTORY_PATHS[1:]
            for path in (ROOT / folder).rglob("*")
            if "__pycache__" not in path.parts
        ]
    return sorted(p for p in paths if p.suffix in TEXT_SUFFIXES and p.is_file())


def test_no_build_history_in_the_project():
    files = project_text_files()
    assert README in files and Path(__file__).resolve() in files
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if BUILD_HISTORY.search(line)
    ]
    assert not hits, "build history in the project:\n" + "\n".join(hits)
