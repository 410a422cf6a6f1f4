#!/usr/bin/env bash
# Put MathJax 3 where the book build picks it up, so that pages typeset their
# mathematics without a CDN. _config.yml has
#   sphinx.config.html_extra_path: ["_build/offline"]   (copied into _build/html/)
#   sphinx.config.mathjax_path: mathjax/tex-mml-chtml.js (relative to _static/)
# and this script fills _build/offline/_static/mathjax/. (Not the book's own _static/:
# Jupyter Book adds every .js file found there to every page.)
#
# The files come from the npm registry's `mathjax` package, pinned below, through
# `npm pack` (which checks the package's integrity hash). Only what the CHTML
# output needs is kept: the combined component, the TeX extensions that load on
# demand (\boldsymbol, \operatorname, ...), the web fonts, the menu and the
# accessibility extensions (with the speech rule engine they use).
# Usage: scripts/fetch_mathjax.sh [destination]   (default: _build/offline/_static/mathjax)
set -euo pipefail
VERSION=3.2.2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/_build/offline/_static/mathjax}"
STAMP="$DEST/.version"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ] && [ -f "$DEST/tex-mml-chtml.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "fetch_mathjax: npm is needed to fetch MathJax $VERSION (Debian: apt-get install npm)" >&2
  exit 1
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
echo "Fetching MathJax $VERSION from the npm registry into ${DEST#"$ROOT"/}"
( cd "$TMP" && npm pack --silent "mathjax@$VERSION" >/dev/null )
tar -xzf "$TMP/mathjax-$VERSION.tgz" -C "$TMP"
rm -rf "$DEST"
mkdir -p "$DEST/output"
cp "$TMP/package/es5/tex-mml-chtml.js" "$DEST/"
cp -r "$TMP/package/es5/input" "$TMP/package/es5/ui" "$TMP/package/es5/a11y" "$TMP/package/es5/sre" "$DEST/"
cp -r "$TMP/package/es5/output/chtml" "$DEST/output/"
cp "$TMP/package/LICENSE" "$DEST/LICENSE"
echo "$VERSION" > "$STAMP"
