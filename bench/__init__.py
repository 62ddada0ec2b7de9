"""gembus benchmarks (`make bench`): every figure is printed beside a limit measured in the same run."""
