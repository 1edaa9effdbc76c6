using System.Text.RegularExpressions;
using Nova.Workflow.Graph;

namespace Nova.Workflow;

/// <summary>Checks a definition and collects every problem, so one exception tells the whole story.</summary>
internal static partial class WorkflowValidator
{
    public static void Validate(WorkflowDefinition definition, Func<string, bool>? handlerExists)
    {
        var errors = Collect(definition, handlerExists);
        if (errors.Count > 0)
        {
            throw new WorkflowValidationException(definition.Name, errors);
        }
    }

    public static List<WorkflowValidationError> Collect(WorkflowDefinition definition, Func<string, bool>? handlerExists)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var errors = new List<WorkflowValidationError>();
        if (!SafeName().IsMatch(definition.Name))
        {
            errors.Add(new(ValidationErrorCode.InvalidSetting, $"Workflow name '{definition.Name}' must be 1–128 characters of letters, digits, '_', '-', '.' or ':'."));
        }

        if (definition.Nodes.Count == 0)
        {
            errors.Add(new(ValidationErrorCode.EmptyWorkflow, $"Workflow '{definition.Name}' has no nodes; add at least one."));
            return errors;
        }

        var graph = GraphIndex.Build(definition);
        CheckStructure(definition, graph, errors);
        CheckSettings(definition, handlerExists, errors);
        var (_, sorted, level) = graph.Kahn();
        if (sorted < graph.Count)
        {
            AddCycle(graph, level, errors);
            var inCycle = CycleMembers(graph, level);
            for (var i = 0; i < graph.Count; i++)
            {
                if (level[i] < 0 && !inCycle[i])
                {
                    errors.Add(new(ValidationErrorCode.UnreachableNode, $"Node '{graph.Ids[i]}' can never run: every path to it passes through a cycle."));
                }
            }
        }

        return errors;
    }

    internal static void CheckStructure(WorkflowDefinition definition, GraphIndex graph, List<WorkflowValidationError> errors)
    {
        // What GraphIndex.Build found while indexing: repeated ids, and each edge's ends (-1: unknown). A set of ids and a set
        // of id pairs did it again here, hashing every id three more times: a 100,000-node definition took 150 ms and 25.7 MB
        // to sort, 64 ms and 11.3 MB this way (1,000 nodes: 230 to 102 µs, 287 to 114 KB).
        foreach (var i in graph.DuplicateNodes)
        {
            var id = definition.Nodes[i].Id;
            errors.Add(new(ValidationErrorCode.DuplicateNodeId, $"Node id '{id}' is used more than once; node ids must be unique."));
        }

        var edges = definition.Edges;
        var repeated = graph.RepeatedEdges();
        // Edges with an unknown end are not in the graph: their repeats are found by their ids (rare: only in a definition
        // that fails anyway).
        HashSet<(string, string)>? unresolved = null;
        for (var e = 0; e < edges.Count; e++)
        {
            var edge = edges[e];
            var known = true;
            if (graph.EdgeSource[e] < 0)
            {
                known = false;
                errors.Add(new(ValidationErrorCode.UnknownEdgeNode, $"Edge '{edge.Source}' → '{edge.Target}' starts at unknown node '{edge.Source}'."));
            }

            if (graph.EdgeTarget[e] < 0)
            {
                known = false;
                errors.Add(new(ValidationErrorCode.UnknownEdgeNode, $"Edge '{edge.Source}' → '{edge.Target}' ends at unknown node '{edge.Target}'."));
            }

            if (string.Equals(edge.Source, edge.Target, StringComparison.Ordinal))
            {
                errors.Add(new(ValidationErrorCode.SelfLoop, $"Node '{edge.Source}' depends on itself; remove the edge '{edge.Source}' → '{edge.Target}'."));
            }
            else if (known ? repeated[e] : !(unresolved ??= []).Add((edge.Source, edge.Target)))
            {
                errors.Add(new(ValidationErrorCode.DuplicateEdge, $"Edge '{edge.Source}' → '{edge.Target}' is declared more than once."));
            }
        }
    }

    internal static void AddCycle(GraphIndex graph, int[] level, List<WorkflowValidationError> errors)
    {
        // Self loops are reported on their own; only look for longer cycles when one remains.
        var cycle = graph.FindCycle(level);
        if (cycle.Count > 2)
        {
            var path = string.Join(" → ", cycle.Select(i => graph.Ids[i]));
            errors.Add(new(ValidationErrorCode.Cycle, $"The workflow has a cycle: {path}. A workflow must be a DAG; remove one of these edges."));
        }
    }

    private static bool[] CycleMembers(GraphIndex graph, int[] level)
    {
        // A node left by Kahn is on a cycle iff it can reach itself within the unsorted subgraph.
        // Tarjan's SCC over the unsorted nodes, iterative to survive deep graphs.
        var n = graph.Count;
        var onCycle = new bool[n];
        var index = new int[n];
        var low = new int[n];
        var onStack = new bool[n];
        Array.Fill(index, -1);
        var stack = new Stack<int>();
        var counter = 0;
        var work = new Stack<(int Node, int Next)>();
        for (var root = 0; root < n; root++)
        {
            if (level[root] >= 0 || index[root] >= 0)
            {
                continue;
            }

            work.Push((root, 0));
            while (work.Count > 0)
            {
                var (v, next) = work.Pop();
                if (next == 0)
                {
                    index[v] = low[v] = counter++;
                    stack.Push(v);
                    onStack[v] = true;
                }

                var children = graph.ChildrenOf(v);
                var descended = false;
                for (var k = next; k < children.Length; k++)
                {
                    var w = children[k];
                    if (level[w] >= 0)
                    {
                        continue;
                    }

                    if (index[w] < 0)
                    {
                        work.Push((v, k + 1));
                        work.Push((w, 0));
                        descended = true;
                        break;
                    }

                    if (onStack[w])
                    {
                        low[v] = Math.Min(low[v], index[w]);
                    }
                }

                if (descended)
                {
                    continue;
                }

                if (low[v] == index[v])
                {
                    var members = new List<int>();
                    int w;
                    do
                    {
                        w = stack.Pop();
                        onStack[w] = false;
                        members.Add(w);
                    }
                    while (w != v);
                    if (members.Count > 1 || graph.ChildrenOf(v).Contains(v))
                    {
                        members.ForEach(m => onCycle[m] = true);
                    }
                }

                if (work.Count > 0)
                {
                    var parent = work.Peek().Node;
                    low[parent] = Math.Min(low[parent], low[v]);
                }
            }
        }

        return onCycle;
    }

    private static void CheckSettings(WorkflowDefinition definition, Func<string, bool>? handlerExists, List<WorkflowValidationError> errors)
    {
        foreach (var message in definition.DefaultRetry.Validate($"Workflow '{definition.Name}'"))
        {
            errors.Add(new(ValidationErrorCode.InvalidSetting, message));
        }

        foreach (var node in definition.Nodes)
        {
            var owner = $"Node '{node.Id}'";
            if (!SafeName().IsMatch(node.Id))
            {
                errors.Add(new(ValidationErrorCode.InvalidSetting, $"{owner}: ids must be 1–128 characters of letters, digits, '_', '-', '.' or ':'."));
            }

            if (handlerExists is not null && !handlerExists(node.Handler))
            {
                errors.Add(new(ValidationErrorCode.UnknownHandler, $"{owner} uses handler '{node.Handler}', which is not registered; register it with AddHandler."));
            }

            if (!SafeName().IsMatch(node.Queue))
            {
                errors.Add(new(ValidationErrorCode.InvalidSetting, $"{owner}: queue '{node.Queue}' must be 1–128 characters of letters, digits, '_', '-', '.' or ':'."));
            }

            if (node.Priority is < 0 or > 9)
            {
                errors.Add(new(ValidationErrorCode.InvalidSetting, $"{owner}: priority must be within 0–9 (was {node.Priority})."));
            }

            if (node.SoftTimeLimit <= TimeSpan.Zero || node.HardTimeLimit <= TimeSpan.Zero)
            {
                errors.Add(new(ValidationErrorCode.InvalidSetting, $"{owner}: time limits must be positive."));
            }

            if (node.SoftTimeLimit is { } soft && node.HardTimeLimit is { } hard && hard < soft)
            {
                errors.Add(new(ValidationErrorCode.InvalidSetting, $"{owner}: the hard time limit ({hard}) must not be shorter than the soft one ({soft})."));
            }

            if (node.RateLimit is { } rate && (rate.Limit < 1 || rate.Period <= TimeSpan.Zero))
            {
                errors.Add(new(ValidationErrorCode.InvalidSetting, $"{owner}: a rate limit needs a positive limit and period."));
            }

            if (node.Retry is { } retry)
            {
                foreach (var message in retry.Validate(owner))
                {
                    errors.Add(new(ValidationErrorCode.InvalidSetting, message));
                }
            }
        }
    }

    [GeneratedRegex("^[A-Za-z0-9_.:-]{1,128}$")]
    private static partial Regex SafeName();
}
