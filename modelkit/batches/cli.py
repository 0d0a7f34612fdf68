"""``python -m modelkit batch INPUT --model NAME --out OUT.parquet [...]``: the batch job from a
shell, with a progress bar. Pretrained weights are used unless ``--no-pretrained`` (as in the
app). Exit status: 0 done, 2 a mistake in the command or the data (the message says which),
130 interrupted (the rows done so far are in OUT; the same command finishes the job).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from modelkit.errors import ModelkitError


def _indices(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers, e.g. 3,2,1") from None


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m modelkit", description=__doc__.split("\n")[0])
    add_batch_parser(top.add_subparsers(dest="command", required=True))
    return top


def add_batch_parser(sub) -> None:
    """The ``batch`` command, on the subparsers of ``python -m modelkit``."""
    p = sub.add_parser("batch", help="embed and classify a folder, a ZIP or files into a table",
                       description="One row per image: file, labels, probabilities, embedding, "
                       "error. Files already in OUT are skipped (rerun to resume).")  # fmt: skip
    p.add_argument("input", nargs="+", metavar="INPUT", help="a folder, a .zip, or image files")
    p.add_argument("--model", help="model name, e.g. efficientnet_lite0 (with --head: its own)")
    p.add_argument("--head", help="a head taught in the app or with modelkit.train_head")
    p.add_argument("--out", required=True, help="OUT.parquet, OUT.csv (predictions) or OUT.npz")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass")
    p.add_argument("--no-pretrained", action="store_true", help="random weights instead")
    p.add_argument("--what", default="predictions,embeddings",
                   help="predictions, embeddings or both (comma-separated)")  # fmt: skip
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--in-chans", type=int, default=None, help="input channels of the model")
    p.add_argument("--channels", type=_indices, default=None, help="image channels, e.g. 3,2,1")
    p.add_argument("--scaling", default=None, help="auto, minmax, percentile, zscore or none")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="fp32", help="fp32, fp16, bf16, or int8 (compiled, CPU)")
    p.add_argument("--backend", default=None,
                   help="auto (the fastest on this CPU), torch, onnxruntime or openvino "
                   "(default: MODELKIT_BACKEND, else auto)")  # fmt: skip
    p.add_argument("--workers", type=int, default=None,
                   help="decoding threads (local) or model actors (ray)")  # fmt: skip
    p.add_argument("--no-cache", action="store_true", help="do not use the result cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _settings(args: argparse.Namespace) -> dict:
    settings = {"device": args.device, "precision": args.precision, "backend": args.backend}
    if args.head is None or args.no_pretrained:
        settings["pretrained"] = not args.no_pretrained
    for name in ("in_chans", "channels", "scaling"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    return settings


def run_batch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from modelkit.batches.job import batch
    from modelkit.errors import ConfigError
    from modelkit.runtime.device import configure_cpu_threads

    if not args.model and not args.head:
        raise ConfigError("Give a model (--model NAME) or a taught head (--head FILE).")
    configure_cpu_threads()

    inputs = args.input[0] if len(args.input) == 1 else args.input
    bars: list = []  # made on the first report: a refused command prints no empty bar

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="img", desc="batch", disable=args.quiet,
                             file=sys.stderr))  # fmt: skip
        bars[0].n = done
        bars[0].refresh()

    try:
        result = batch(
            inputs, args.model, what=[w.strip() for w in args.what.split(",") if w.strip()],
            head=args.head, batch_size=args.batch_size, top_k=args.top_k, out=args.out,
            engine=args.engine, workers=args.workers, progress=progress,
            use_result_cache=not args.no_cache, **_settings(args),
        )  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    print(f"{result.out}: {result.computed} new rows ({result.errors} with an error), "
          f"{result.already_done} already there, {result.total} images in the input.")  # fmt: skip
    if result.skipped:
        shown = ", ".join(name for name, _ in result.skipped[:5])
        more = f" and {len(result.skipped) - 5} more" if len(result.skipped) > 5 else ""
        print(f"Not images, left out: {shown}{more}.")
    for note in result.notes:
        print(f"Note: {note}")
    if result.random_weights:
        print(f"Note: random weights in {', '.join(result.random_weights)}: predictions are "
              "meaningless and results are not cached.")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return handle(parser().parse_args(argv))


def handle(args: argparse.Namespace) -> int:
    """Run a parsed ``batch`` command: exit status 0, 2 (a mistake, in words) or 130."""
    return guard(run_batch, args, f"the rows done so far are in {args.out}")


def guard(run: Callable[[argparse.Namespace], int], args: argparse.Namespace, kept: str) -> int:
    """``run(args)`` with exit status 0, 2 for a mistake (its message, no traceback) or 130 when
    interrupted (``kept`` says where the work done so far is)."""
    try:
        return run(args)
    except ModelkitError as exc:
        print(f"modelkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"modelkit: interrupted; {kept}. Run the same command again to finish.",
              file=sys.stderr)  # fmt: skip
        return 130
