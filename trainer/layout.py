"""A run directory's layout: the one place its files are named.

    RUN/config.json          the settings the run was created with (runs.save_config)
    RUN/command.txt          every command that ran it, one per line
    RUN/checkpoints/         TensorFlow's checkpoints; `checkpoint` names the newest
    RUN/policy/              the exported policy, a SavedModel
    RUN/eval.json            the final evaluation (`eval` writes eval-<step>.json beside it)
    RUN/train/, RUN/eval/    TensorBoard's event files

A camera run adds its own files (trainer/dagger.py) and its teacher's run in teacher/;
its dagger.json is named here, since storage/ sends it after the files it names.
"""

CONFIG = "config.json"
COMMAND = "command.txt"
CHECKPOINTS = "checkpoints"
POLICY = "policy"
EVAL_JSON = "eval.json"
TRAIN_EVENTS = "train"
EVAL_EVENTS = "eval"
CHECKPOINT_POINTER = CHECKPOINTS + "/checkpoint"  # TensorFlow's, naming the newest
DAGGER_STATE = "dagger.json"  # a camera run's finished rounds, naming the last student
