#!/usr/bin/env python3
"""Embeds a file in C as `const char NAME[]` and `const size_t NAME_len` (the live page).
Usage: embed.py INPUT OUTPUT NAME"""
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write("/* Generated from %s by embed.py; do not edit. */\n" % src.split("/")[-1])
    f.write("#include <stddef.h>\n\n")
    f.write("extern const unsigned char %s[];\nextern const size_t %s_len;\n" % (name, name))
    f.write("const unsigned char %s[] = {\n" % name)
    for i in range(0, len(data), 16):
        f.write("\t" + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",\n")
    f.write("\t0x00,\n};\n")
    f.write("const size_t %s_len = %d;\n" % (name, len(data)))
