#!/usr/bin/env python3
"""Generates the benchmark plant: about 1 GiB, half incompressible HMI-image-like data
(8 images of 64 MiB), half PLC-export-like text in 5,000 files.

usage: gen.py DIR            build the data set
       gen.py DIR --change   change about 1% of it (50 text files, 5 MiB of one image)
"""
import os
import random
import sys

IMAGES = 8
IMAGE_SIZE = 64 * 1024 * 1024
TEXT_FILES = 5000
TEXT_SIZE = 512 * 1024 * 1024 // TEXT_FILES


def vocabulary(rng):
    ops = ["A", "AN", "O", "ON", "=", "S", "R", "L", "T", "JC", "CALL"]
    lines = []
    for i in range(4000):
        op = rng.choice(ops)
        lines.append(
            f"      {op:<5} {rng.choice('IQMDB')} {rng.randrange(256)}.{rng.randrange(8)}"
            f"    // {rng.choice(['motor', 'valve', 'conveyor', 'filler', 'capper', 'sensor'])} {i}\n"
        )
    return lines


def text_file(rng, lines, n):
    out = [f"FUNCTION_BLOCK FB{n}\nVERSION : 0.{n % 10}\nBEGIN\n"]
    size = len(out[0])
    net = 0
    while size < TEXT_SIZE:
        net += 1
        chunk = f"NETWORK {net}\n" + "".join(rng.choices(lines, k=12))
        out.append(chunk)
        size += len(chunk)
    return "".join(out)[:TEXT_SIZE].encode()


def build(root):
    rng = random.Random(62443)
    lines = vocabulary(rng)
    for i in range(TEXT_FILES):
        path = os.path.join(root, "exports", f"line{i % 10}", f"FB{i}.awl")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(text_file(rng, lines, i))
    for i in range(IMAGES):
        path = os.path.join(root, "hmi", f"panel{i}.img")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(IMAGE_SIZE))


def change(root):
    rng = random.Random(7)
    lines = vocabulary(random.Random(62443))
    for i in rng.sample(range(TEXT_FILES), 50):
        path = os.path.join(root, "exports", f"line{i % 10}", f"FB{i}.awl")
        with open(path, "wb") as f:
            f.write(text_file(rng, lines, i + 100000))
    with open(os.path.join(root, "hmi", "panel3.img"), "r+b") as f:
        f.seek(20 * 1024 * 1024)
        f.write(rng.randbytes(5 * 1024 * 1024))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[2] == "--change":
        change(sys.argv[1])
    elif len(sys.argv) == 2:
        build(sys.argv[1])
    else:
        sys.exit(__doc__)
