"""axe-core in the browser tests: WCAG 2.1 AA checks of a page as Chromium renders it.

tests/vendor/axe.min.js is axe-core as published on npm (version and license in tests/vendor/README.md).
It goes in with page.evaluate(), which the page's Content Security Policy does not govern; a script tag
(page.add_script_tag) would be an inline script, which the CSP refuses.
"""

from pathlib import Path
from typing import Any

AXE_SOURCE = (Path(__file__).resolve().parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
# The rules of the standard we promise (WCAG 2.1 A and AA), plus axe's best practices that it rates
# serious or critical (a page without a main landmark, say).
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
FAILING_IMPACTS = ("serious", "critical")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """The serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        AXE_TAGS,
    )
    return [v for v in result["violations"] if v["impact"] in FAILING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    """One line per failing element: what rule, where, and axe's own account of why."""
    lines = []
    for violation in violations:
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            lines.append(f"{violation['id']} ({violation['impact']}) at {target}: {node['failureSummary']}")
    return "\n".join(lines)
