"""docs/algorithm.md ships with the code, and every citation points at a section."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "algorithm.md"
CITATION = re.compile(r"docs/algorithm\.md (§\d+(?:[–,] ?§\d+)*)")


def cited_files() -> list[Path]:
    patterns = (
        "rllib_mwm/**/*.py",
        "tests/*.py",
        "scripts/*.py",
        "tuned_examples/**/*",
    )
    files = [p for pattern in patterns for p in ROOT.glob(pattern) if p.is_file()]
    return [*files, ROOT / "README.md", DOC]


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
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Differences from the released code", 1)[1]
    section = section.split("\n## ", 1)[0]
    for topic in ("bf16", "rollout_fragment_length", "Meta-world v3"):
        assert topic in section, topic
