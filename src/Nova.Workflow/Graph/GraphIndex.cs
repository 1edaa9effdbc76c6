namespace Nova.Workflow.Graph;

/// <summary>
/// A definition's nodes as dense indices with parent and child adjacency in CSR form, so every
/// graph algorithm runs in O(V+E) without per-node searches. Edges that name unknown nodes are
/// left out (validation reports them).
/// </summary>
internal sealed class GraphIndex
{
    private GraphIndex(string[] ids, Dictionary<string, int> index, List<int>? duplicateNodes, int[] edgeSource, int[] edgeTarget, int[] childStart, int[] children, int[] childEdge, int[] parentStart, int[] parents, int[] childSlotToParentSlot)
    {
        ChildSlotToParentSlot = childSlotToParentSlot;
        Ids = ids;
        Index = index;
        DuplicateNodes = (IReadOnlyList<int>?)duplicateNodes ?? [];
        EdgeSource = edgeSource;
        EdgeTarget = edgeTarget;
        ChildStart = childStart;
        Children = children;
        ChildEdge = childEdge;
        ParentStart = parentStart;
        Parents = parents;
    }

    public string[] Ids { get; }

    public Dictionary<string, int> Index { get; }

    public int Count => Ids.Length;

    /// <summary>The positions of nodes whose id an earlier node has already (in declaration order); the index maps the id to the first.</summary>
    public IReadOnlyList<int> DuplicateNodes { get; }

    /// <summary>Per edge of the definition, its source's index, or -1 when no node has that id.</summary>
    public int[] EdgeSource { get; }

    /// <summary>Per edge of the definition, its target's index, or -1 when no node has that id.</summary>
    public int[] EdgeTarget { get; }

    /// <summary>Children of node i are Children[ChildStart[i]..ChildStart[i+1]].</summary>
    public int[] ChildStart { get; }

    public int[] Children { get; }

    /// <summary>For each child slot, the index of its edge in the definition's edge list.</summary>
    public int[] ChildEdge { get; }

    public int[] ParentStart { get; }

    /// <summary>For each child slot (the parent's view of an edge), the matching parent slot (the child's view).</summary>
    public int[] ChildSlotToParentSlot { get; }

    public int[] Parents { get; }

    public ReadOnlySpan<int> ChildrenOf(int node) => Children.AsSpan(ChildStart[node], ChildStart[node + 1] - ChildStart[node]);

    public ReadOnlySpan<int> ParentsOf(int node) => Parents.AsSpan(ParentStart[node], ParentStart[node + 1] - ParentStart[node]);

    public int ParentCount(int node) => ParentStart[node + 1] - ParentStart[node];

    public int ChildCount(int node) => ChildStart[node + 1] - ChildStart[node];

    public static GraphIndex Build(WorkflowDefinition definition)
    {
        var nodes = definition.Nodes;
        var ids = new string[nodes.Count];
        var index = new Dictionary<string, int>(nodes.Count, StringComparer.Ordinal);
        List<int>? duplicates = null;
        for (var i = 0; i < nodes.Count; i++)
        {
            ids[i] = nodes[i].Id;
            if (!index.TryAdd(nodes[i].Id, i))
            {
                (duplicates ??= []).Add(i);
            }
        }

        var edges = definition.Edges;
        var src = new int[edges.Count];
        var dst = new int[edges.Count];
        var childStart = new int[ids.Length + 1];
        var parentStart = new int[ids.Length + 1];
        for (var e = 0; e < edges.Count; e++)
        {
            var s = src[e] = index.TryGetValue(edges[e].Source, out var si) ? si : -1;
            var t = dst[e] = index.TryGetValue(edges[e].Target, out var ti) ? ti : -1;
            if (s >= 0 && t >= 0)
            {
                childStart[s + 1]++;
                parentStart[t + 1]++;
            }
        }

        for (var i = 0; i < ids.Length; i++)
        {
            childStart[i + 1] += childStart[i];
            parentStart[i + 1] += parentStart[i];
        }

        var children = new int[childStart[^1]];
        var childEdge = new int[children.Length];
        var parents = new int[parentStart[^1]];
        var childToParent = new int[children.Length];
        var childFill = childStart.AsSpan(0, ids.Length).ToArray();
        var parentFill = parentStart.AsSpan(0, ids.Length).ToArray();
        for (var e = 0; e < edges.Count; e++)
        {
            if (src[e] < 0 || dst[e] < 0)
            {
                continue;
            }

            var childSlot = childFill[src[e]]++;
            var parentSlot = parentFill[dst[e]]++;
            childEdge[childSlot] = e;
            children[childSlot] = dst[e];
            parents[parentSlot] = src[e];
            childToParent[childSlot] = parentSlot;
        }

        return new GraphIndex(ids, index, duplicates, src, dst, childStart, children, childEdge, parentStart, parents, childToParent);
    }

    /// <summary>
    /// Per edge of the definition, whether an earlier edge joins the same two nodes (self loops excepted: they are an error
    /// of their own). One pass over the children with a mark per node, not a set of id pairs: a node's children are in
    /// declaration order, so the first of equal edges is the one left unmarked.
    /// </summary>
    public bool[] RepeatedEdges()
    {
        var repeated = new bool[EdgeSource.Length];
        var seenFrom = new int[Count];
        Array.Fill(seenFrom, -1);
        for (var source = 0; source < Count; source++)
        {
            for (var slot = ChildStart[source]; slot < ChildStart[source + 1]; slot++)
            {
                var child = Children[slot];
                if (child == source)
                {
                    continue;
                }

                if (seenFrom[child] == source)
                {
                    repeated[ChildEdge[slot]] = true;
                }
                else
                {
                    seenFrom[child] = source;
                }
            }
        }

        return repeated;
    }

    /// <summary>
    /// Kahn's algorithm. Ties are broken by declaration order (a FIFO seeded in index order), so the
    /// order is deterministic. Returns the sorted indices and each node's level (-1 for nodes left
    /// unsorted by a cycle).
    /// </summary>
    public (int[] Order, int SortedCount, int[] Level) Kahn()
    {
        var n = Count;
        var remaining = new int[n];
        var level = new int[n];
        var order = new int[n];
        int head = 0, tail = 0;
        for (var i = 0; i < n; i++)
        {
            remaining[i] = ParentCount(i);
            level[i] = -1;
            if (remaining[i] == 0)
            {
                level[i] = 0;
                order[tail++] = i;
            }
        }

        while (head < tail)
        {
            var node = order[head++];
            foreach (var child in ChildrenOf(node))
            {
                if (level[node] + 1 > level[child])
                {
                    level[child] = level[node] + 1;
                }

                if (--remaining[child] == 0)
                {
                    order[tail++] = child;
                }
            }
        }

        for (var i = 0; i < n; i++)
        {
            if (remaining[i] > 0)
            {
                level[i] = -1;
            }
        }

        return (order, tail, level);
    }

    /// <summary>Finds one cycle among nodes that Kahn left unsorted, in edge direction, first node repeated at the end.</summary>
    public List<int> FindCycle(int[] level)
    {
        // Every unsorted node has at least one unsorted parent; walking parents must revisit a node.
        var start = Array.FindIndex(level, l => l < 0);
        var seenAt = new Dictionary<int, int>();
        var walk = new List<int>();
        var current = start;
        while (!seenAt.ContainsKey(current))
        {
            seenAt[current] = walk.Count;
            walk.Add(current);
            var next = -1;
            foreach (var p in ParentsOf(current))
            {
                if (level[p] < 0)
                {
                    next = p;
                    break;
                }
            }

            current = next;
        }

        var cycle = walk.GetRange(seenAt[current], walk.Count - seenAt[current]);
        cycle.Reverse();

        // Start at the first-declared member so the message is stable and reads like the definition.
        var first = cycle.IndexOf(cycle.Min());
        cycle = [.. cycle[first..], .. cycle[..first]];
        cycle.Add(cycle[0]);
        return cycle;
    }
}
