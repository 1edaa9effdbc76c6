using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Nova.Workflow.Benchmarks.SorterBenchmarks).Assembly).Run(args);
