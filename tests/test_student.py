"""trainer/student.py: the numpy student is the Keras student (issue 28)."""

import numpy as np

from trainer import student


def test_the_numpy_student_acts_as_the_keras_model():
    rng = np.random.default_rng(0)
    model = student.build(32, 6, 3, 1e-3)
    arms = (rng.normal(size=(64, 6)) * 3 + 1).astype(np.float32)
    images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    model.get_layer("arm_normalization").adapt(arms)
    model.fit({"image": images, "arm": arms}, rng.uniform(-1, 1, (64, 3)), verbose=0)
    actor = student.StudentActor(student.params(model))
    expected = model({"image": images[:4], "arm": arms[:4]}).numpy()
    got = np.stack([actor.action({"image": images[i], "arm": arms[i]}) for i in range(4)])
    np.testing.assert_allclose(got, expected, atol=1e-5)
