#!/usr/bin/env python3
"""Prints a recipe's osPackages, space-separated, for hack/boot/base.sh's
BASE_PACKAGES: the boot tests export onto a base that has what the image
declares (prebake export refuses a base that lacks one).

Usage: ospackages.py RECIPE.yaml"""
import re, sys

m = re.search(r"^osPackages: \[(.*)\]", open(sys.argv[1]).read(), re.M)
if not m:
    sys.exit(f"ospackages.py: {sys.argv[1]}: no osPackages: [...] line")
print(" ".join(x.strip() for x in m.group(1).split(",") if x.strip()))
