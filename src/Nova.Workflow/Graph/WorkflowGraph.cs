using Nova.Workflow.Graph;

namespace Nova.Workflow;

/// <summary>Graph algorithms on a definition: Kahn's topological sort and execution levels, both O(V+E) and deterministic.</summary>
public static class WorkflowGraph
{
    /// <summary>
    /// Node ids in dependency order: every node comes after all its parents; ties keep declaration order.
    /// </summary>
    /// <exception cref="WorkflowValidationException">The graph has a cycle (the message names its path) or a dangling edge.</exception>
    public static IReadOnlyList<string> TopologicalSort(WorkflowDefinition definition)
    {
        var (graph, order, _) = SortOrThrow(definition);
        var ids = new string[order.Length];
        for (var i = 0; i < order.Length; i++)
        {
            ids[i] = graph.Ids[order[i]];
        }

        return ids;
    }

    /// <summary>
    /// Nodes grouped by level: level 0 holds the roots, level k the nodes whose longest path from a
    /// root has k edges. Nodes of one level never depend on each other and can run in parallel.
    /// </summary>
    /// <exception cref="WorkflowValidationException">The graph has a cycle or a dangling edge.</exception>
    public static IReadOnlyList<IReadOnlyList<string>> ExecutionLevels(WorkflowDefinition definition)
    {
        var (graph, order, level) = SortOrThrow(definition);
        var levels = new List<List<string>>();
        foreach (var node in order)
        {
            while (levels.Count <= level[node])
            {
                levels.Add([]);
            }

            levels[level[node]].Add(graph.Ids[node]);
        }

        return levels;
    }

    private static (GraphIndex Graph, int[] Order, int[] Level) SortOrThrow(WorkflowDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var graph = GraphIndex.Build(definition);
        var errors = new List<WorkflowValidationError>();
        WorkflowValidator.CheckStructure(definition, graph, errors);
        var (order, sorted, level) = graph.Kahn();
        if (sorted < graph.Count)
        {
            WorkflowValidator.AddCycle(graph, level, errors);
        }

        if (errors.Count > 0)
        {
            throw new WorkflowValidationException(definition.Name, errors);
        }

        return (graph, order, level);
    }
}
