using BenchmarkDotNet.Running;
using Nova.Workflow.Benchmarks;

// "e2e [inmemory|redis ...]" runs the end-to-end runner; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "e2e")
{
    await EndToEndRunner.RunAsync(args[1..]);
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(SorterBenchmarks).Assembly).Run(args);
