"""Mean teacher: the EMA update by hand; the teacher is not trained by the optimiser."""

import torch
from torch import nn

from unimos.strategies.mean_teacher import ema_update


def test_ema_update_moves_the_teacher_towards_the_student_by_one_minus_decay():
    teacher, student = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        teacher.weight.copy_(torch.tensor([[1.0, 2.0]]))
        teacher.bias.fill_(0.0)
        student.weight.copy_(torch.tensor([[3.0, -2.0]]))
        student.bias.fill_(1.0)
    ema_update(teacher, student, decay=0.9)
    assert torch.allclose(teacher.weight, torch.tensor([[1.2, 1.6]]))
    assert torch.allclose(teacher.bias, torch.tensor([0.1]))


def test_ema_update_averages_float_buffers_and_copies_counters():
    teacher, student = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    student.running_mean.fill_(1.0)
    student.num_batches_tracked.fill_(7)
    ema_update(teacher, student, decay=0.75)
    assert torch.allclose(teacher.running_mean, torch.full((2,), 0.25))
    assert int(teacher.num_batches_tracked) == 7
