using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using Nova.Workflow.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Nova.Workflow.Postgres;

/// <summary>
/// An execution document (or a chunk of a large execution's nodes) serialized into a reused buffer, for one statement's
/// parameter; dispose it once the statement has run. Writers are kept by size: many small ones (a group commit serializes
/// dozens of documents at once) and a few that grew past 64 KB (up to 1 MB). A large execution's nodes are in chunks, so
/// its document stays small.
/// </summary>
internal sealed class DocumentWriter : IDisposable
{
    private const int SmallCapacity = 64 * 1024;
    private const int MaxSmall = 256;
    private const int MediumCapacity = 1 << 20;
    private const int MaxMedium = 16;
    private static readonly ConcurrentBag<DocumentWriter> Small = [];
    private static readonly ConcurrentBag<DocumentWriter> Medium = [];

    // A single-node execution's document is about 600 bytes: a new writer starts small and grows (doubling) to what its
    // documents need. Starting at 16 KB made the buffers 70% of all bytes a PostgreSQL worker allocated.
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly Utf8JsonWriter _json;

    private DocumentWriter() => _json = new Utf8JsonWriter(_buffer);

    /// <summary>The serialized document.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;

    /// <summary>Serializes <paramref name="state"/>'s document (without its nodes when they go in chunks).</summary>
    public static DocumentWriter Write(ExecutionState state)
    {
        var writer = Take();
        var document = state.ToDocument();
        if (DocumentChunks.IsChunked(state))
        {
            document.Nodes = [];
            document.InEdges = [];
            document.Chunks = DocumentChunks.Count(state);
        }

        JsonSerializer.Serialize(writer._json, document, ExecutionDocumentContext.Default.ExecutionDocument);
        return writer;
    }

    /// <summary>A writer for <see cref="WriteChunk"/>.</summary>
    public static DocumentWriter Take() => Small.TryTake(out var kept) || Medium.TryTake(out kept) ? kept : new DocumentWriter();

    /// <summary>Serializes chunk <paramref name="chunk"/> of <paramref name="state"/>'s nodes in place of what was written.</summary>
    public ReadOnlySpan<byte> WriteChunk(ExecutionState state, int chunk)
    {
        Clear();
        DocumentChunks.Write(_json, state, chunk);
        return _buffer.WrittenSpan;
    }

    /// <summary>A bytea parameter over the written bytes (valid until disposed).</summary>
    public NpgsqlParameter Parameter() => new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = Written };

    public void Dispose()
    {
        Clear();
        var capacity = _buffer.Capacity;
        var (bag, most) = capacity <= SmallCapacity ? (Small, MaxSmall) : (Medium, capacity <= MediumCapacity ? MaxMedium : 0);
        if (bag.Count < most)
        {
            bag.Add(this);
        }
    }

    private void Clear()
    {
        _json.Reset();
        _buffer.ResetWrittenCount();
    }
}
