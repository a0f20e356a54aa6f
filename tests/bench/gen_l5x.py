#!/usr/bin/env python3
"""Generates a whole-controller L5X export for the structured-diff benchmark: 2,000
routines in 100 programs, 50,000 rungs, 20,000 tags (half controller-scoped, half in the
programs, with decorated values), about 20 MB.

usage: gen_l5x.py OUT.L5X            the export
       gen_l5x.py OUT.L5X --change   the same export with one rung changed
"""
import random
import sys

PROGRAMS, ROUTINES, RUNGS, TAGS = 100, 20, 25, 20000
OPS = ["XIC", "XIO", "OTE", "OTL", "OTU", "TON", "CTU", "MOV", "ADD", "EQU", "GRT"]


def rung(rng, p, r, i):
    parts = []
    for _ in range(rng.randrange(5, 12)):
        op = rng.choice(OPS)
        tag = f"P{p:03d}_Tag{rng.randrange(100):03d}"
        if op in ("TON", "CTU"):
            parts.append(f"{op}(T_{p:03d}_{r:02d}_{i:02d},?,?)")
        elif op in ("MOV", "ADD"):
            parts.append(f"{op}({tag},C_Tag{rng.randrange(10000):05d})")
        elif op in ("EQU", "GRT"):
            parts.append(f"{op}({tag},{rng.randrange(1000)})")
        else:
            parts.append(f"{op}({tag})")
    return "".join(parts) + ";"


def tag(name, rng):
    v = rng.randrange(-100000, 100000)
    return (
        f'<Tag Name="{name}" TagType="Base" DataType="DINT" Radix="Decimal" Constant="false" ExternalAccess="Read/Write">\n'
        f"<Description>\n<![CDATA[generated tag {name}: a setpoint of the line, kept by the bench]]>\n</Description>\n"
        f'<Data Format="Decorated">\n<DataValue DataType="DINT" Radix="Decimal" Value="{v}"/>\n</Data>\n</Tag>\n'
    )


def main():
    out, change = sys.argv[1], "--change" in sys.argv
    rng = random.Random(20)
    w = []
    w.append('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n')
    w.append(
        '<RSLogix5000Content SchemaRevision="1.0" SoftwareRevision="33.01" TargetName="Bench" '
        'TargetType="Controller" ContainsContext="false" Owner="bench" ExportDate="Mon Nov 30 10:00:00 2026" '
        'ExportOptions="NoRawData L5KData DecoratedData">\n'
    )
    w.append('<Controller Use="Target" Name="Bench" ProcessorType="1756-L85E" MajorRev="33" MinorRev="11">\n<Tags>\n')
    for t in range(TAGS // 2):
        w.append(tag(f"C_Tag{t:05d}", rng))
    w.append("</Tags>\n<Programs>\n")
    per_program = TAGS // 2 // PROGRAMS
    for p in range(PROGRAMS):
        w.append(f'<Program Name="P{p:03d}" TestEdits="false" MainRoutineName="R00" Disabled="false">\n<Tags>\n')
        for t in range(per_program):
            w.append(tag(f"P{p:03d}_Tag{t:03d}", rng))
        w.append("</Tags>\n<Routines>\n")
        for r in range(ROUTINES):
            w.append(f'<Routine Name="R{r:02d}" Type="RLL">\n<RLLContent>\n')
            for i in range(RUNGS):
                text = rung(rng, p, r, i)
                if change and (p, r, i) == (42, 7, 13):
                    text = "XIC(Bypass)" + text
                comment = f"<Comment>\n<![CDATA[step {i} of routine {r}]]>\n</Comment>\n"
                w.append(f'<Rung Number="{i}" Type="N">\n{comment}<Text>\n<![CDATA[{text}]]>\n</Text>\n</Rung>\n')
            w.append("</RLLContent>\n</Routine>\n")
        w.append("</Routines>\n</Program>\n")
    w.append('</Programs>\n<Tasks>\n<Task Name="Main" Type="CONTINUOUS" Priority="10" Watchdog="500">\n<ScheduledPrograms>\n')
    for p in range(PROGRAMS):
        w.append(f'<ScheduledProgram Name="P{p:03d}"/>\n')
    w.append("</ScheduledPrograms>\n</Task>\n</Tasks>\n</Controller>\n</RSLogix5000Content>\n")
    with open(out, "w", encoding="utf-8") as f:
        f.write("".join(w))


main()
