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
/// document on the large object heap. Writers are kept by size: many small ones (a group commit serializes dozens of
/// documents at once), a few that grew past 64 KB, and two that grew past 1 MB (up to 32 MB).
/// </summary>
internal sealed class DocumentWriter : IDisposable
{
    private const int SmallCapacity = 64 * 1024;
    private const int MaxSmall = 256;
    private const int MediumCapacity = 1 << 20;
    private const int MaxMedium = 16;
    private const int LargeCapacity = 32 << 20;
    private const int MaxLarge = 2;
    private const int LargeFromNodes = 2_000;
    private static readonly ConcurrentBag<DocumentWriter> Small = [];
    private static readonly ConcurrentBag<DocumentWriter> Medium = [];

    // Writers of documents past 1 MB (executions of thousands of nodes), kept apart and few: a fresh multi-megabyte buffer
    // per write cost more in first-touch page faults and growth copies than the serializing itself (measured on a
    // 10,000-node execution).
    private static readonly ConcurrentBag<DocumentWriter> Large = [];

    // A single-node execution's document is about 600 bytes: a new writer starts small and grows (doubling) to what its
    // documents need. Starting at 16 KB made the buffers 70% of all bytes a PostgreSQL worker allocated.
    private readonly ArrayBufferWriter<byte> _buffer = new(1024);
    private readonly Utf8JsonWriter _json;

    private DocumentWriter() => _json = new Utf8JsonWriter(_buffer);

    /// <summary>The serialized document.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;

    /// <summary>Serializes <paramref name="state"/>'s document.</summary>
    public static DocumentWriter Write(ExecutionState state)
    {
        var writer = (state.Nodes.Length >= LargeFromNodes && Large.TryTake(out var kept)) || Small.TryTake(out kept) || Medium.TryTake(out kept)
            ? kept
            : new DocumentWriter();
        JsonSerializer.Serialize(writer._json, state.ToDocument(), ExecutionDocumentContext.Default.ExecutionDocument);
        return writer;
    }

    /// <summary>A bytea parameter over the written bytes (valid until disposed).</summary>
    public NpgsqlParameter Parameter() => new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = Written };

    public void Dispose()
    {
        _json.Reset();
        _buffer.ResetWrittenCount();
        var capacity = _buffer.Capacity;
        var (bag, most) = capacity <= SmallCapacity ? (Small, MaxSmall)
            : capacity <= MediumCapacity ? (Medium, MaxMedium)
            : (Large, capacity <= LargeCapacity ? MaxLarge : 0);
        if (bag.Count < most)
        {
            bag.Add(this);
        }
    }
}
