using System.Text.Json;
using Nova.Workflow.Storage;
using Xunit;

namespace Nova.Workflow.Tests.Storage;

public sealed class ExecutionDocumentTests
{
    [Fact]
    public void Timestamps_are_written_as_utc_ticks_and_read_back_exactly()
    {
        var started = new DateTimeOffset(2026, 11, 22, 21, 5, 7, TimeSpan.Zero).AddTicks(1234567);
        var document = new ExecutionDocument
        {
            CreatedAt = started.AddHours(2).ToOffset(TimeSpan.FromHours(2)),
            Nodes = [new NodeRun { Status = NodeStatus.Running, Attempt = 1, StartedAt = started, LeaseExpiresAt = started.AddSeconds(15) }],
        };

        var json = JsonSerializer.Serialize(document, ExecutionDocumentContext.Default.ExecutionDocument);
        Assert.Contains($"\"StartedAt\":{started.UtcTicks}", json, StringComparison.Ordinal);
        var read = JsonSerializer.Deserialize(json, ExecutionDocumentContext.Default.ExecutionDocument)!;

        Assert.Equal(document.CreatedAt, read.CreatedAt);
        Assert.Equal(started, read.Nodes[0].StartedAt);
        Assert.Equal(started.UtcTicks, read.Nodes[0].StartedAt!.Value.UtcTicks);
        Assert.Null(read.Nodes[0].EndedAt);
        Assert.Equal(started.AddSeconds(15), read.Nodes[0].LeaseExpiresAt);
    }

    [Fact]
    public void Documents_written_with_iso_timestamps_still_read()
    {
        const string json = """{"CreatedAt":"2026-11-22T21:05:07.1234567+00:00","Status":1,"Nodes":[{"Status":3,"Attempt":1,"StartedAt":"2026-11-22T21:05:08+00:00","EndedAt":"2026-11-22T23:05:09+02:00"}]}""";

        var read = JsonSerializer.Deserialize(json, ExecutionDocumentContext.Default.ExecutionDocument)!;

        Assert.Equal(new DateTimeOffset(2026, 11, 22, 21, 5, 7, TimeSpan.Zero).AddTicks(1234567), read.CreatedAt);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 21, 5, 8, TimeSpan.Zero), read.Nodes[0].StartedAt);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 21, 5, 9, TimeSpan.Zero), read.Nodes[0].EndedAt);
    }
}
