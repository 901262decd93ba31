"""The artifact's metadata: licence, citation (CITATION.cff, docs/citing.md) and the workflow catalog settings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAPER_AUTHORS = ["Mitchell", "Lin", "Bosselut", "Finn", "Manning"]


def test_license_is_mit_for_the_contributors():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 mend-repro contributors" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_citation_cff_parses_with_the_required_keys_and_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    # Required by the Citation File Format 1.2.0 schema.
    assert {"cff-version", "message", "title", "authors"} <= set(cff)
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["authors"] and all("name" in a or "family-names" in a for a in cff["authors"])
    assert cff["license"] == "MIT"
    assert cff["version"] == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (paper,) = [r for r in cff["references"] if r["title"] == "Fast Model Editing at Scale"]
    assert paper["type"] == "conference-paper" and paper["year"] == 2022
    assert [a["family-names"] for a in paper["authors"]] == PAPER_AUTHORS
    assert all({"family-names", "given-names"} <= set(a) for a in paper["authors"])
    assert "ICLR 2022" in paper["conference"]["name"]
    assert any("2110.11309" in i["value"] for i in paper["identifiers"])


def test_citing_page_has_the_papers_bibtex():
    text = (ROOT / "docs" / "citing.md").read_text()
    entry = re.search(r"@inproceedings\{mitchell2022fast,(.*?)\n\}", text, re.S)
    assert entry, "docs/citing.md lacks the paper's @inproceedings entry"
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?$", entry.group(1), re.M))
    assert fields["title"] == "Fast Model Editing at Scale" and fields["year"] == "2022"
    assert [a.split(",")[0].strip() for a in fields["author"].split(" and ")] == PAPER_AUTHORS
    assert fields["eprint"] == "2110.11309" and "Learning Representations" in fields["booktitle"]


def test_workflow_catalog_settings():
    settings = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())["usage"]
    assert set(settings) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert settings["report"] is True
    assert set(settings["software-stack-deployment"]) <= {"conda", "apptainer", "apptainer+conda"}
    assert (ROOT / "config" / "README.md").is_file()
