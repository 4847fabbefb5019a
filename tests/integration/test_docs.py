"""The documentation holds together: the README's two commands are the ones
CI runs, and every relative link of the README and of the pages under
deploy/ names a file (and a heading) that exists.  No daemon is started."""

import os
import re
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def pages():
    """README.md and every Markdown page under deploy/."""
    found = [os.path.join(ROOT, "README.md")]
    for d, _, files in os.walk(os.path.join(ROOT, "deploy")):
        found += [os.path.join(d, f) for f in sorted(files) if f.endswith(".md")]
    return found


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", read(path), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


class TestDocs(unittest.TestCase):
    def test_readme_test_command_is_what_ci_runs(self):
        """The README's first code block is `make demo` then `make ci`, and
        .ci/run runs exactly `make ci` (besides `set -e` and the cd)."""
        readme = read(os.path.join(ROOT, "README.md"))
        block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1)
        commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
        self.assertEqual(commands, ["make demo", "make ci"])
        ci = read(os.path.join(ROOT, ".ci", "run")).splitlines()
        ran = [line.strip() for line in ci
               if line.strip() and not line.startswith("#")
               and line.strip() != "set -e" and not line.startswith("cd ")]
        self.assertEqual(ran, ["make ci"])

    def test_relative_links_resolve(self):
        """Every [text](target) that is not a URL names an existing file,
        and a #fragment names one of that file's headings."""
        broken = []
        for page in pages():
            text = re.sub(r"```.*?```", "", read(page), flags=re.S)
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"[a-z]+:", target):
                    continue
                path, _, frag = target.partition("#")
                full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
                where = os.path.relpath(page, ROOT)
                if not os.path.exists(full):
                    broken.append("%s: %s (no such file)" % (where, target))
                elif frag and full.endswith(".md") and frag not in anchors(full):
                    broken.append("%s: %s (no such heading)" % (where, target))
        self.assertEqual(broken, [])


if __name__ == "__main__":
    unittest.main()
