using System.Text.Json;
using Nova.Workflow.Storage;

namespace Nova.Workflow.Postgres;

/// <summary>
/// A large execution's nodes in chunks of <see cref="NodesPerChunk"/> consecutive nodes, each with the outcomes of its nodes'
/// incoming edges (a node's edge slots are consecutive, so a chunk's are too): <c>[[node, ...], [edge, ...]]</c>, one row
/// each. A transition then writes only the chunks it changed instead of rewriting every node in one document: those with a
/// node marked <see cref="NodeRun.Changed"/> whose bytes differ from the ones last read or written.
/// </summary>
internal static class DocumentChunks
{
    /// <summary>Nodes per chunk: about 6 KB of JSON, a few KB once compressed.</summary>
    public const int NodesPerChunk = 64;

    /// <summary>Executions of more nodes than this keep them in chunks.</summary>
    public const int ChunkedAbove = 128;

    public static bool IsChunked(ExecutionState state) => state.Nodes.Length > ChunkedAbove;

    public static int Count(ExecutionState state) => (state.Nodes.Length + NodesPerChunk - 1) / NodesPerChunk;

    /// <summary>Whether a node of chunk <paramref name="chunk"/> changed since it was last taken, and marks them all unchanged.</summary>
    public static bool TakeChanged(ExecutionState state, int chunk)
    {
        var changed = false;
        var end = Math.Min((chunk + 1) * NodesPerChunk, state.Nodes.Length);
        for (var i = chunk * NodesPerChunk; i < end; i++)
        {
            changed |= state.Nodes[i].Changed;
            state.Nodes[i].Changed = false;
        }

        return changed;
    }

    /// <summary>Writes chunk <paramref name="chunk"/> of <paramref name="state"/>.</summary>
    public static void Write(Utf8JsonWriter writer, ExecutionState state, int chunk)
    {
        var first = chunk * NodesPerChunk;
        var end = Math.Min(first + NodesPerChunk, state.Nodes.Length);
        var parentStart = state.Plan.Graph.ParentStart;
        writer.WriteStartArray();
        writer.WriteStartArray();
        for (var i = first; i < end; i++)
        {
            JsonSerializer.Serialize(writer, state.Nodes[i], ExecutionDocumentContext.Default.NodeRun);
        }

        writer.WriteEndArray();
        writer.WriteStartArray();
        for (var s = parentStart[first]; s < parentStart[end]; s++)
        {
            writer.WriteNumberValue((byte)state.InEdges[s]);
        }

        writer.WriteEndArray();
        writer.WriteEndArray();
        writer.Flush();
    }

    /// <summary>Puts the nodes and edges of <paramref name="chunks"/> (in chunk order) back into <paramref name="document"/>.</summary>
    /// <exception cref="InvalidDataException">The chunks do not match the document's count.</exception>
    public static void Restore(ExecutionDocument document, byte[][]? chunks)
    {
        if (chunks is null || chunks.Length != document.Chunks)
        {
            throw new InvalidDataException($"Execution {document.Id} is stored in {document.Chunks} chunks, but {chunks?.Length ?? 0} were found.");
        }

        var nodes = new List<NodeRun>(chunks.Length * NodesPerChunk);
        var edges = new List<EdgeOutcome>();
        foreach (var chunk in chunks)
        {
            var reader = new Utf8JsonReader(chunk);
            Expect(ref reader, JsonTokenType.StartArray, document.Id);
            Expect(ref reader, JsonTokenType.StartArray, document.Id);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                var node = JsonSerializer.Deserialize(ref reader, ExecutionDocumentContext.Default.NodeRun)!;
                node.Changed = false; // as its row holds it
                nodes.Add(node);
            }

            Expect(ref reader, JsonTokenType.StartArray, document.Id);
            while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
            {
                edges.Add((EdgeOutcome)reader.GetByte());
            }
        }

        document.Nodes = [.. nodes];
        document.InEdges = [.. edges];
    }

    private static void Expect(ref Utf8JsonReader reader, JsonTokenType token, Guid execution)
    {
        if (!reader.Read() || reader.TokenType != token)
        {
            throw new InvalidDataException($"A chunk of execution {execution} is not in the chunk format.");
        }
    }
}
