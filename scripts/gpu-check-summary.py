"""Summary of a scripts/gpu-check.sh run: reads OUTDIR's raw outputs (the
parity and compile test logs, bench/compare.py's JSON files) and writes
OUTDIR/gpu-check.json and OUTDIR/gpu-check.md with the CUDA issue's targets
checked (H200, lmech against PyTorch on the same GPU):

  fp32 SIMT GEMM        >= 0.7x cuBLAS fp32 (torch.mm, TF32 off) at 4096^3
  tensor-core GEMM      >= 0.6x cuBLAS at the same precision (TF32, BF16), 4096^3
  MLP training step     >= 2x faster than PyTorch eager, widths <= 2048
  HVP                   >= 2x faster than torch.func jvp(grad)
  sharpness to 1e-3     >= 5x faster than PyTorch's power iteration

Usage: python3 scripts/gpu-check-summary.py OUTDIR [--fatal MESSAGE]
"""

import glob
import json
import os
import re
import sys


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def test_log(path):
    text = read(path)
    if text is None:
        return {"ran": False}
    m = re.findall(r"test result: (\w+)\. (\d+) passed; (\d+) failed", text)
    ex = re.findall(r"^exit (\d+)$", text, re.M)
    failures = re.findall(r"^---- (\S+) stdout ----$", text, re.M)
    skipped = len(re.findall(r"skipped: ", text))
    return {
        "ran": True,
        "result": m[-1][0] if m else None,
        "passed": int(m[-1][1]) if m else 0,
        "failed": int(m[-1][2]) if m else None,
        "failures": failures,
        "skipped_lines": skipped,
        "exit": int(ex[-1]) if ex else None,
        "tail": text.strip().splitlines()[-15:],
    }


def rows(compare, name):
    c = compare.get(name) or {}
    return c.get("rows", [])


def ok(side):
    return side.get("status") == "ok"


def target(name, value, goal, detail):
    return {"target": name, "value": value, "goal": goal,
            "met": None if value is None else value >= goal, "detail": detail}


def targets(compare):
    out = []
    for name, kind, goal in (("fp32 SIMT GEMM vs cuBLAS fp32, 4096^3", "simt", 0.7),
                             ("TF32 tensor-core GEMM vs cuBLAS TF32, 4096^3", "tc-tf32", 0.6),
                             ("BF16 tensor-core GEMM vs cuBLAS BF16, 4096^3", "tc-bf16", 0.6)):
        r = [x for x in rows(compare, f"gemm-{kind}") if x["width"] == 4096]
        v = r[0]["ratio"] if r else None
        out.append(target(name, v, goal, "torch.mm time / lmech time" if r else "not measured"))
    simt = [x for x in rows(compare, "gemm-simt") if x["width"] == 4096 and ok(x["lmech"])]
    cub = [x for x in rows(compare, "gemm-cublas") if x["width"] == 4096 and ok(x["lmech"])]
    if simt and cub:
        v = cub[0]["lmech"]["median_ms"] / simt[0]["lmech"]["median_ms"]
        out.append(target("fp32 SIMT GEMM vs cuBLAS sgemm through cudarc, 4096^3", v, 0.7,
                          "lmech cublas time / lmech simt time"))
    for r in rows(compare, "train"):
        if r["width"] <= 2048:
            out.append(target(f"training step, width {r['width']}", r["ratio"], 2.0,
                              "PyTorch eager time / lmech time"))
    for r in rows(compare, "hvp"):
        if r["workload"] == "hvp":
            out.append(target(f"HVP, width {r['width']}", r["ratio"], 2.0,
                              "torch.func jvp(grad) time / lmech time"))
    sharp = rows(compare, "sharpness")
    for r in sharp:
        if r["workload"] != "sharpness_lanczos" or not ok(r["lmech"]):
            continue
        power = [p for p in sharp if p["workload"] == "sharpness_power"
                 and p["size"] == r["size"] and ok(p["torch"])]
        v = power[0]["torch"]["median_ms"] / r["lmech"]["median_ms"] if power else None
        out.append(target(f"sharpness to 1e-3, width {r['width']}", v, 5.0,
                          "PyTorch power iteration time / lmech Lanczos time"))
    return out


def main(argv):
    out = argv[0]
    fatal = argv[2] if len(argv) > 2 and argv[1] == "--fatal" else None
    compare = {}
    for path in sorted(glob.glob(os.path.join(out, "compare-*.json"))):
        name = os.path.basename(path)[len("compare-"):-len(".json")]
        try:
            with open(path) as f:
                compare[name] = json.load(f)
        except (OSError, ValueError) as e:
            compare[name] = {"error": str(e)}
    result = {
        "fatal": fatal,
        "devices": (read(os.path.join(out, "devices.txt")) or "").strip().splitlines(),
        "nvidia_smi": (read(os.path.join(out, "nvidia-smi.txt")) or "").strip().splitlines()[:12],
        "bundle": (read(os.path.join(out, "bundle-manifest.txt")) or "").strip().splitlines(),
        "cuda_compile": test_log(os.path.join(out, "cuda_compile.txt")),
        "cuda_parity": test_log(os.path.join(out, "cuda_parity.txt")),
        "targets": targets(compare),
        "compare": compare,
    }
    md = ["# lmech CUDA GPU check", ""]
    if fatal:
        md += [f"**Not run: {fatal}**", ""]
    md += ["Devices:", "", "```"] + result["devices"] + ["```", ""]
    for name in ("cuda_compile", "cuda_parity"):
        t = result[name]
        if t["ran"]:
            md.append(f"- {name}: {t['result']}, {t['passed']} passed "
                      f"({t['skipped_lines']} of them reported skipped), {t['failed']} failed, "
                      f"exit {t['exit']}" + (f"; failures: {', '.join(t['failures'])}"
                                              if t["failures"] else ""))
        else:
            md.append(f"- {name}: not run")
    md += ["", "| target | value | goal | met | measure |", "|---|---|---|---|---|"]
    for t in result["targets"]:
        v = "—" if t["value"] is None else f"{t['value']:.2f}"
        met = "—" if t["met"] is None else ("yes" if t["met"] else "no")
        md.append(f"| {t['target']} | {v} | {t['goal']} | {met} | {t['detail']} |")
    for name, c in compare.items():
        md += ["", f"## {name}", ""]
        md.append(c.get("markdown") or f"(no table: {c.get('skipped') or c.get('error') or 'incomplete run'}"
                  + (f"; {len(c.get('rows', []))} rows in JSON)" if "rows" in c else ")"))
    with open(os.path.join(out, "gpu-check.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "gpu-check.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md[:40]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
