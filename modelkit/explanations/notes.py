"""What an explanation means and where it stops, in plain words (shown under the charts)."""

from __future__ import annotations

from modelkit.explanations.bands import BASELINES, shared_filter_groups


def explanation_notes(out, model, baseline: str, samples, steps: int, has_head: bool) -> list[str]:
    score = "the taught head's logit" if has_head else "the model's logit (before softmax)"
    notes = [f"Score: {score} for '{out.target_label}' (class {out.target_index}), "
             f"{out.score:.4g}."]  # fmt: skip
    base = BASELINES[baseline]
    if out.method == "bands":
        how = (f"Shapley values over {samples} random band orders" if samples
               else "each band replaced by the baseline on its own")  # fmt: skip
        notes.append(f"Band importance: how much the score falls with {how}; baseline: {base}.")
    elif out.method == "gradcam":
        notes.append(
            f"Grad-CAM at {out.layer}: where the features that raise the score are active "
            "(0 outside the part of the image the model saw). The band bars are a first-order "
            f"estimate (gradient x (input - baseline)), baseline: {base}."
        )
    else:
        error = out.checks.get("completeness_error", float("nan"))
        advice = " (over 5 %: use more steps)." if error > 0.05 else "."
        notes.append(
            f"Integrated gradients in {steps} steps from the baseline ({base}): the map and "
            f"bands add up to the score change {out.checks.get('score_change', 0):.4g} "
            f"within {100 * error:.2g} %{advice}"
        )
    groups = shared_filter_groups(model)
    if groups and any("repeated" in a for a in getattr(model, "adaptations", [])):
        listed = "; ".join(", ".join(map(str, g)) for g in groups)
        notes.append(
            f"The first conv was adapted by repeating its RGB filters: bands {listed} got the "
            "same filter, so the model treats them alike by construction; their importance "
            "differs only through their values. A taught head re-weights the features, not "
            "this first layer: the bands stay tied after teaching too."
        )
    return notes
