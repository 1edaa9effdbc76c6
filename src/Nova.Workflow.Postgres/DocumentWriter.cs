using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using Nova.Workflow.Storage;
using Npgsql;
using NpgsqlTypes;

namespace Nova.Workflow.Postgres;

/// <summary>
/// An execution document serialized into a reused buffer, for one statement's parameter; dispose it once the statement
/// has run. Every transition rewrites the whole document, and a fresh array per write put each large execution's
/// document on the large object heap. A few writers are kept, and two that grew past 1 MB (up to 32 MB).
/// </summary>
internal sealed class DocumentWriter : IDisposable
{
    private const int MaxKept = 16;
    private const int MaxKeptCapacity = 1 << 20;
    private const int MaxLarge = 2;
    private const int MaxLargeCapacity = 32 << 20;
    private const int LargeFromNodes = 2_000;
    private static readonly ConcurrentBag<DocumentWriter> Free = [];

    // Writers of documents past 1 MB (executions of thousands of nodes), kept apart and few: a fresh multi-megabyte buffer
    // per write cost more in first-touch page faults and growth copies than the serializing itself (measured on a
    // 10,000-node execution).
    private static readonly ConcurrentBag<DocumentWriter> Large = [];

    private readonly ArrayBufferWriter<byte> _buffer = new(16 * 1024);
    private readonly Utf8JsonWriter _json;

    private DocumentWriter() => _json = new Utf8JsonWriter(_buffer);

    /// <summary>The serialized document.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;

    /// <summary>Serializes <paramref name="state"/>'s document.</summary>
    public static DocumentWriter Write(ExecutionState state)
    {
        var writer = (state.Nodes.Length >= LargeFromNodes && Large.TryTake(out var kept)) || Free.TryTake(out kept) ? kept : new DocumentWriter();
        JsonSerializer.Serialize(writer._json, state.ToDocument(), ExecutionDocumentContext.Default.ExecutionDocument);
        return writer;
    }

    /// <summary>A bytea parameter over the written bytes (valid until disposed).</summary>
    public NpgsqlParameter Parameter() => new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = Written };

    public void Dispose()
    {
        _json.Reset();
        _buffer.ResetWrittenCount();
        var (bag, most) = _buffer.Capacity <= MaxKeptCapacity ? (Free, MaxKept) : (Large, _buffer.Capacity <= MaxLargeCapacity ? MaxLarge : 0);
        if (bag.Count < most)
        {
            bag.Add(this);
        }
    }
}
