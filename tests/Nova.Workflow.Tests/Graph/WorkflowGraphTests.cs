using Xunit;

namespace Nova.Workflow.Tests.Graph;

public sealed class WorkflowGraphTests
{
    private static WorkflowDefinition Of(int count, IEnumerable<(int, int)> edges) =>
        new("g", 1, Enumerable.Range(0, count).Select(i => new NodeDefinition($"n{i}", "h")), edges.Select(e => new EdgeDefinition($"n{e.Item1}", $"n{e.Item2}")));

    [Fact]
    public void Sort_is_deterministic_and_keeps_declaration_order_among_ties()
    {
        var definition = new WorkflowBuilder("d")
            .Node("z", "h").Node("a", "h").Node("m", "h", n => n.DependsOn("z")).Node("b", "h", n => n.DependsOn("a", "m"))
            .Build();
        Assert.Equal(["z", "a", "m", "b"], WorkflowGraph.TopologicalSort(definition));
        Assert.Equal([["z", "a"], ["m"], ["b"]], WorkflowGraph.ExecutionLevels(definition).Select(l => l.ToArray()));
    }

    [Fact]
    public void Sort_reports_a_cycle_with_its_path()
    {
        var ex = Assert.Throws<WorkflowValidationException>(() => WorkflowGraph.TopologicalSort(Of(3, [(0, 1), (1, 2), (2, 1)])));
        Assert.Contains("n1 → n2 → n1", ex.Message);
    }

    [Fact]
    public void A_hundred_thousand_node_chain_sorts_without_recursion()
    {
        const int n = 100_000;
        var order = WorkflowGraph.TopologicalSort(Of(n, Enumerable.Range(0, n - 1).Select(i => (i, i + 1))));
        Assert.Equal(n, order.Count);
        Assert.Equal("n99999", order[^1]);
        Assert.Equal(n, WorkflowGraph.ExecutionLevels(Of(n, Enumerable.Range(0, n - 1).Select(i => (i, i + 1)))).Count);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    public void Random_dags_sort_and_level_like_the_reference_model(int seed)
    {
        // Property test: random DAGs against a slow, obviously correct reference (longest path by repeated relaxation).
        var random = new Random(seed);
        for (var round = 0; round < 40; round++)
        {
            var count = random.Next(1, 60);
            var edges = new HashSet<(int, int)>();
            var edgeCount = random.Next(0, count * 2);
            for (var e = 0; e < edgeCount; e++)
            {
                var a = random.Next(count);
                var b = random.Next(count);
                if (a != b)
                {
                    edges.Add((Math.Min(a, b), Math.Max(a, b)));
                }
            }

            // Shuffle the declaration order so index order is not a topological order.
            var names = Enumerable.Range(0, count).OrderBy(_ => random.Next()).ToArray();
            var definition = new WorkflowDefinition("g", 1, names.Select(i => new NodeDefinition($"n{i}", "h")), edges.Select(e => new EdgeDefinition($"n{e.Item1}", $"n{e.Item2}")));

            var order = WorkflowGraph.TopologicalSort(definition);
            var position = order.Select((id, i) => (id, i)).ToDictionary(x => x.id, x => x.i);
            Assert.Equal(count, order.Count);
            Assert.All(edges, e => Assert.True(position[$"n{e.Item1}"] < position[$"n{e.Item2}"]));

            var level = new int[count];
            for (var changed = true; changed;)
            {
                changed = false;
                foreach (var (a, b) in edges)
                {
                    if (level[b] < level[a] + 1)
                    {
                        level[b] = level[a] + 1;
                        changed = true;
                    }
                }
            }

            var levels = WorkflowGraph.ExecutionLevels(definition);
            for (var l = 0; l < levels.Count; l++)
            {
                Assert.All(levels[l], id => Assert.Equal(l, level[int.Parse(id[1..], System.Globalization.CultureInfo.InvariantCulture)]));
            }

            Assert.Equal(count, WorkflowGraph.TopologicalSort(definition).Count);
            Assert.Equal(order, WorkflowGraph.TopologicalSort(definition));
        }
    }
}
