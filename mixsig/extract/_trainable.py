"""Which parameters of a fine-tuned model train: the classification head, the last K encoder blocks and what the
base model runs after them (a pooler, a final norm), or everything."""

from __future__ import annotations

from mixsig.errors import ExtractionError, UsageError


def _encoder_blocks(base, n_layers: int):
    """The ModuleList of the encoder's transformer blocks (the largest with ``num_hidden_layers`` entries)."""
    import torch

    candidates = [m for m in base.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == n_layers]
    if not candidates:
        raise ExtractionError(f"cannot find the {n_layers} encoder blocks of {type(base).__name__} to unfreeze; "
                              "use --unfreeze-last 0 to train the classifier only")
    return max(candidates, key=lambda m: sum(p.numel() for p in m.parameters()))


def _after_blocks(model, base, last_block, example: dict) -> list:
    """Modules of ``base`` holding parameters that run after ``last_block`` in one forward of ``model`` on
    ``example`` (eval mode, no grad): what lies between the last block and the classifier (a pooler, a final norm)."""
    import torch

    state = {"after": False}
    found: list = []

    def mark_done(module, inputs, output):
        state["after"] = True

    def pre(module, inputs):
        if state["after"] and not any(m is module for m in found):
            found.append(module)

    handles = [last_block.register_forward_hook(mark_done)]
    handles += [m.register_forward_pre_hook(pre) for m in base.modules() if m is not base
                and next(m.parameters(recurse=False), None) is not None]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(**example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return found


def set_trainable(model, unfreeze_last, example: dict | None = None) -> dict:
    """Freeze the model, then make trainable (``unfreeze_last``):

    - ``0``: the classification head only (the parameters outside ``model.base_model``);
    - ``K >= 1``: the head, the last K encoder blocks and the modules the base model runs after its last block
      on the way to the classifier (BERT's pooler, a final layer norm), found by one forward on ``example``
      (a collated batch of model inputs, on the model's device; required for these K);
    - ``"all"``: every parameter, embeddings included (a full fine-tune).

    Returns ``{"unfreeze_last", "trained", "total", "modules"}``: parameter counts trained / total and the names of
    the trained modules (the head's top modules, the blocks, the modules after them; ``["all"]`` for all)."""
    names = {id(m): n for n, m in model.named_modules()}
    base = model.base_model
    params = {id(p): p for p in model.parameters()}
    for p in params.values():
        p.requires_grad = False
    if unfreeze_last == "all":
        trainable = dict(params)
        modules = ["all"]
    else:
        base_ids = {id(p) for p in base.parameters()}
        head = [(n, m) for n, m in model.named_children() if m is not base
                and any(id(p) not in base_ids for p in m.parameters())]
        trainable = {i: p for i, p in params.items() if i not in base_ids}
        if not trainable:
            raise ExtractionError(f"{type(model).__name__} has no classification head outside its base model")
        modules = [n for n, _ in head] + [n for n, _ in model.named_parameters(recurse=False)]
        k = int(unfreeze_last)
        if k:
            n_layers = int(model.config.num_hidden_layers)
            if k > n_layers:
                raise UsageError(f"--unfreeze-last {k} exceeds the encoder's {n_layers} blocks; use 'all' for a "
                                 "full fine-tune")
            if example is None:
                raise ValueError("set_trainable needs an example batch for unfreeze_last >= 1")
            blocks = list(_encoder_blocks(base, n_layers))
            chosen = blocks[-k:] + _after_blocks(model, base, blocks[-1], example)
            for m in chosen:
                trainable.update({id(p): p for p in m.parameters()})
                modules.append(names.get(id(m), type(m).__name__))
    for p in trainable.values():
        p.requires_grad = True
    return {"unfreeze_last": unfreeze_last, "trained": int(sum(p.numel() for p in trainable.values())),
            "total": int(sum(p.numel() for p in params.values())), "modules": modules}


__all__ = ["set_trainable"]
