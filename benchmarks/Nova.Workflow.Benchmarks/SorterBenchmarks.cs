using BenchmarkDotNet.Attributes;

namespace Nova.Workflow.Benchmarks;

/// <summary>Kahn's sort and validation of large DAGs: a chain plus a random sprinkle of forward edges.</summary>
[MemoryDiagnoser]
public class SorterBenchmarks
{
    private WorkflowDefinition _definition = null!;

    [Params(1_000, 100_000)]
    public int Nodes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        var nodes = Enumerable.Range(0, Nodes).Select(i => new NodeDefinition($"n{i}", "noop")).ToList();
        var edges = new List<EdgeDefinition>();
        for (var i = 1; i < Nodes; i++)
        {
            edges.Add(new EdgeDefinition($"n{random.Next(i)}", $"n{i}"));
            if (i > 2 && random.Next(2) == 0)
            {
                edges.Add(new EdgeDefinition($"n{random.Next(i - 1)}", $"n{i}"));
            }
        }

        _definition = new WorkflowDefinition("big", 1, nodes, edges.DistinctBy(e => (e.Source, e.Target)));
    }

    [Benchmark]
    public int TopologicalSort() => WorkflowGraph.TopologicalSort(_definition).Count;

    [Benchmark]
    public int Validate() => WorkflowValidator.Collect(_definition, _ => true).Count;
}
