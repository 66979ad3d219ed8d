#!/usr/bin/python3
"""PyTorch reference for bench_distill: the same teacher and optical student, trained on the same batch
shape with the same thread count, timed the same way (median of 7 rounds after one warm-up step).

usage: bench_torch.py BATCH THREADS
Prints one line per network, "torch <name> <images/s>", which bench_distill reads. Exits 3 when torch is
not importable (bench_distill then prints a note and skips the comparison).
"""
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(3)


def rate(step, steps, batch):
    step()
    rounds = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rounds.append(steps * batch / (time.perf_counter() - t0))
    return statistics.median(rounds)


def teacher_net():
    # make_teacher(TeacherArch{channels {16, 32}, hidden 128}): conv3×3 → BN → ReLU → maxpool 2, twice;
    # linear 128 → BN → ReLU → linear 10.
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 128), torch.nn.BatchNorm1d(128), torch.nn.ReLU(),
        torch.nn.Linear(128, 10))


class Student(torch.nn.Module):
    # The default OpticalStudent: 8 softplus kernels of 7×7 ("same" cross-correlation), camera noise
    # (Gaussian shot + read noise), pairs subtracted, 4×4 average pooling, standardisation, 196 → 256 → 10.
    def __init__(self, dtype):
        super().__init__()
        self.rho = torch.nn.Parameter(torch.full((8, 1, 7, 7), -3.9, dtype=dtype) + 0.1 * torch.randn(8, 1, 7, 7, dtype=dtype))
        self.fc1 = torch.nn.Linear(196, 256, dtype=dtype)
        self.fc2 = torch.nn.Linear(256, 10, dtype=dtype)
        self.register_buffer("mu", torch.zeros(196, dtype=dtype))
        self.register_buffer("inv_sd", torch.ones(196, dtype=dtype))

    def forward(self, x):
        y = F.conv2d(x, F.softplus(self.rho), padding=3)
        y = y + torch.sqrt(torch.clamp(y, min=1e-8) / 200.0) * torch.randn_like(y) + 0.02 * torch.randn_like(y)
        s = y[:, 0::2] - y[:, 1::2]
        a = F.avg_pool2d(s, 4).flatten(1)
        return self.fc2(F.relu(self.fc1((a - self.mu) * self.inv_sd)))


def main():
    batch, threads = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    y = torch.arange(batch) % 10
    for name, net, dtype, steps in (("teacher-float32", teacher_net(), torch.float32, 10),
                                    ("student-float32", Student(torch.float32), torch.float32, 20),
                                    ("student-float64", Student(torch.float64), torch.float64, 20)):
        x = torch.rand(batch, 1, 28, 28, dtype=dtype)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()

        print(f"torch {name} {rate(step, steps, batch):.1f}", flush=True)


if __name__ == "__main__":
    main()
