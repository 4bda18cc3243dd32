"""The run kinds (distill, multitask, teacher, online, record), their configs, run directories and evaluation."""
