using System.Text.Json;
using System.Text.Json.Serialization;

namespace Nova.Workflow.Storage;

/// <summary>
/// A node's state in a stored execution document as a positional array:
/// <c>[status, attempt, token, worker, started, ended, ready, lease, pending parents, losses, [output], error]</c>, timestamps in
/// UTC ticks, absent values null, the trailing output and error left out when there are none. A document holds one per node
/// and every transition rewrites it: the array is half the size of the object form and parses without matching property
/// names. Documents written in the object form (before this format) still read.
/// </summary>
internal sealed class NodeRunConverter : JsonConverter<NodeRun>
{
    public override NodeRun Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.StartObject)
        {
            return ReadObject(ref reader);
        }

        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new JsonException("A node's state must be an array or an object.");
        }

        var run = new NodeRun();
        for (var k = 0; reader.Read() && reader.TokenType != JsonTokenType.EndArray; k++)
        {
            if (reader.TokenType == JsonTokenType.Null)
            {
                continue;
            }

            switch (k)
            {
                case 0: run.Status = (NodeStatus)reader.GetInt32(); break;
                case 1: run.Attempt = reader.GetInt32(); break;
                case 2: run.RunToken = reader.GetGuid(); break;
                case 3: run.WorkerId = reader.GetString(); break;
                case 4: run.StartedAt = Ticks(reader.GetInt64()); break;
                case 5: run.EndedAt = Ticks(reader.GetInt64()); break;
                case 6: run.ReadyAt = Ticks(reader.GetInt64()); break;
                case 7: run.LeaseExpiresAt = Ticks(reader.GetInt64()); break;
                case 8: run.PendingParents = reader.GetInt32(); break;
                case 9: run.Losses = reader.GetInt32(); break;
                case 10:
                    // The output is wrapped in a one-element array, so an output that is JSON null differs from none.
                    reader.Read();
                    run.Output = JsonElement.ParseValue(ref reader);
                    reader.Read();
                    break;
                case 11: run.Error = JsonSerializer.Deserialize(ref reader, ExecutionDocumentContext.Default.NodeError); break;
                default: reader.Skip(); break;
            }
        }

        return run;
    }

    public override void Write(Utf8JsonWriter writer, NodeRun value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        writer.WriteNumberValue((int)value.Status);
        writer.WriteNumberValue(value.Attempt);
        if (value.RunToken == Guid.Empty)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteStringValue(value.RunToken);
        }

        if (value.WorkerId is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteStringValue(value.WorkerId);
        }

        WriteTicks(writer, value.StartedAt);
        WriteTicks(writer, value.EndedAt);
        writer.WriteNumberValue(value.ReadyAt.UtcTicks);
        writer.WriteNumberValue(value.LeaseExpiresAt.UtcTicks);
        writer.WriteNumberValue(value.PendingParents);
        writer.WriteNumberValue(value.Losses);
        if (value.Output is { } output)
        {
            writer.WriteStartArray();
            output.WriteTo(writer);
            writer.WriteEndArray();
        }
        else if (value.Error is not null)
        {
            writer.WriteNullValue();
        }

        if (value.Error is { } error)
        {
            JsonSerializer.Serialize(writer, error, ExecutionDocumentContext.Default.NodeError);
        }

        writer.WriteEndArray();
    }

    private static DateTimeOffset Ticks(long ticks) => new(ticks, TimeSpan.Zero);

    private static void WriteTicks(Utf8JsonWriter writer, DateTimeOffset? value)
    {
        if (value is { } v)
        {
            writer.WriteNumberValue(v.UtcTicks);
        }
        else
        {
            writer.WriteNullValue();
        }
    }

    /// <summary>The object form documents were written in before.</summary>
    private static NodeRun ReadObject(ref Utf8JsonReader reader)
    {
        var run = new NodeRun();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var name = reader.GetString();
            reader.Read();
            if (reader.TokenType == JsonTokenType.Null)
            {
                continue;
            }

            switch (name)
            {
                case nameof(NodeRun.Status): run.Status = (NodeStatus)reader.GetInt32(); break;
                case nameof(NodeRun.Attempt): run.Attempt = reader.GetInt32(); break;
                case nameof(NodeRun.RunToken): run.RunToken = reader.GetGuid(); break;
                case nameof(NodeRun.WorkerId): run.WorkerId = reader.GetString(); break;
                case nameof(NodeRun.StartedAt): run.StartedAt = Timestamp(ref reader); break;
                case nameof(NodeRun.EndedAt): run.EndedAt = Timestamp(ref reader); break;
                case nameof(NodeRun.ReadyAt): run.ReadyAt = Timestamp(ref reader); break;
                case nameof(NodeRun.LeaseExpiresAt): run.LeaseExpiresAt = Timestamp(ref reader); break;
                case nameof(NodeRun.Output): run.Output = JsonElement.ParseValue(ref reader); break;
                case nameof(NodeRun.Error): run.Error = JsonSerializer.Deserialize(ref reader, ExecutionDocumentContext.Default.NodeError); break;
                case nameof(NodeRun.PendingParents): run.PendingParents = reader.GetInt32(); break;
                case nameof(NodeRun.Losses): run.Losses = reader.GetInt32(); break;
                default: reader.Skip(); break;
            }
        }

        return run;
    }

    internal static DateTimeOffset Timestamp(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number ? Ticks(reader.GetInt64()) : reader.GetDateTimeOffset();
}

/// <summary>
/// Document timestamps as UTC ticks: a large execution's document holds four per node and is rewritten on every transition,
/// and ISO 8601 text was the costliest part of writing and reading it. Documents written before keep their ISO strings and
/// read as they always did.
/// </summary>
internal sealed class TicksTimestampConverter : JsonConverter<DateTimeOffset>
{
    public override DateTimeOffset Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        NodeRunConverter.Timestamp(ref reader);

    public override void Write(Utf8JsonWriter writer, DateTimeOffset value, JsonSerializerOptions options) =>
        writer.WriteNumberValue(value.UtcTicks);
}
