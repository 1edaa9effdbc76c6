using BenchmarkDotNet.Running;
using Nova.Workflow.Benchmarks;

// "e2e [inmemory|redis|postgres ...] [--quick] [--out DIR]" runs the end-to-end comparison with Hangfire;
// "e2e-one ENGINE STORAGE CONNECTION" is one of its child processes; anything else goes to BenchmarkDotNet.
if (args.Length > 0 && args[0] == "e2e")
{
    await EndToEndRunner.RunAsync(args[1..]);
    return 0;
}

if (args.Length > 0 && args[0] == "e2e-one")
{
    return await EndToEndRunner.RunOneAsync(args[1..]);
}

BenchmarkSwitcher.FromAssembly(typeof(SorterBenchmarks).Assembly).Run(args);
return 0;
