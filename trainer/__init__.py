"""Train a simulated Kuka arm to grasp a block with TF-Agents on pybullet."""
