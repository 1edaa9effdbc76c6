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
/// document on the large object heap. A few writers are kept; one grown past 1 MB is left to the GC.
/// </summary>
internal sealed class DocumentWriter : IDisposable
{
    private const int MaxKept = 16;
    private const int MaxKeptCapacity = 1 << 20;
    private static readonly ConcurrentBag<DocumentWriter> Free = [];

    private readonly ArrayBufferWriter<byte> _buffer = new(16 * 1024);
    private readonly Utf8JsonWriter _json;

    private DocumentWriter() => _json = new Utf8JsonWriter(_buffer);

    /// <summary>The serialized document.</summary>
    public ReadOnlyMemory<byte> Written => _buffer.WrittenMemory;

    /// <summary>Serializes <paramref name="state"/>'s document.</summary>
    public static DocumentWriter Write(ExecutionState state)
    {
        var writer = Free.TryTake(out var free) ? free : new DocumentWriter();
        JsonSerializer.Serialize(writer._json, state.ToDocument(), ExecutionDocumentContext.Default.ExecutionDocument);
        return writer;
    }

    /// <summary>A bytea parameter over the written bytes (valid until disposed).</summary>
    public NpgsqlParameter Parameter() => new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea, TypedValue = Written };

    public void Dispose()
    {
        _json.Reset();
        _buffer.ResetWrittenCount();
        if (_buffer.Capacity <= MaxKeptCapacity && Free.Count < MaxKept)
        {
            Free.Add(this);
        }
    }
}
