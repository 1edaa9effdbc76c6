using Nova.Workflow.Graph;

namespace Nova.Workflow.Storage;

/// <summary>
/// A validated definition compiled for execution: dense node indices and adjacency, pinned to an
/// execution when it starts so later edits of the workflow never change it.
/// </summary>
public sealed class ExecutionPlan
{
    private ExecutionPlan(WorkflowDefinition definition, GraphIndex graph)
    {
        Definition = definition;
        Graph = graph;
        var n = graph.Count;
        Nodes = [.. definition.Nodes];
        Retry = new RetryPolicy[n];
        var roots = new List<int>();
        var leaves = new List<int>();
        for (var i = 0; i < n; i++)
        {
            Retry[i] = Nodes[i].Retry ?? definition.DefaultRetry;
            if (graph.ParentCount(i) == 0)
            {
                roots.Add(i);
            }

            if (graph.ChildStart[i + 1] == graph.ChildStart[i])
            {
                leaves.Add(i);
            }
        }

        Roots = [.. roots];
        Leaves = [.. leaves];

        SlotCondition = new EdgeCondition?[graph.Children.Length];
        for (var s = 0; s < SlotCondition.Length; s++)
        {
            SlotCondition[s] = definition.Edges[graph.ChildEdge[s]].Condition;
            HasConditions |= SlotCondition[s] is not null;
        }
    }

    /// <summary>The pinned definition.</summary>
    public WorkflowDefinition Definition { get; }

    /// <summary>The workflow name.</summary>
    public string Workflow => Definition.Name;

    /// <summary>The workflow version.</summary>
    public int Version => Definition.Version;

    /// <summary>Number of nodes.</summary>
    public int NodeCount => Graph.Count;

    internal GraphIndex Graph { get; }

    internal NodeDefinition[] Nodes { get; }

    internal RetryPolicy[] Retry { get; }

    internal int[] Roots { get; }

    internal int[] Leaves { get; }

    internal int[] ChildSlotToParentSlot => Graph.ChildSlotToParentSlot;

    internal EdgeCondition?[] SlotCondition { get; }

    internal bool HasConditions { get; }

    internal int IndexOf(string nodeId) => Graph.Index.TryGetValue(nodeId, out var i) ? i : -1;

    /// <summary>Compiles a definition that has passed validation.</summary>
    internal static ExecutionPlan Create(WorkflowDefinition definition) => new(definition, GraphIndex.Build(definition));

    /// <summary>Evaluates the node's outgoing edge conditions on its output; null when every edge is taken.</summary>
    internal bool[]? EvaluateEdges(int node, System.Text.Json.JsonElement? output)
    {
        if (!HasConditions)
        {
            return null;
        }

        var start = Graph.ChildStart[node];
        var end = Graph.ChildStart[node + 1];
        bool[]? taken = null;
        for (var s = start; s < end; s++)
        {
            if (SlotCondition[s] is { } condition && !condition.Evaluate(output))
            {
                taken ??= Enumerable.Repeat(true, end - start).ToArray();
                taken[s - start] = false;
            }
        }

        return taken;
    }
}
