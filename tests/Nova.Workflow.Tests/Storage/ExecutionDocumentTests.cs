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
        Assert.Contains($"\"Nodes\":[[2,1,null,null,{started.UtcTicks},null,", json, StringComparison.Ordinal);
        var read = JsonSerializer.Deserialize(json, ExecutionDocumentContext.Default.ExecutionDocument)!;

        Assert.Equal(document.CreatedAt, read.CreatedAt);
        Assert.Equal(started, read.Nodes[0].StartedAt);
        Assert.Equal(started.UtcTicks, read.Nodes[0].StartedAt!.Value.UtcTicks);
        Assert.Null(read.Nodes[0].EndedAt);
        Assert.Equal(started.AddSeconds(15), read.Nodes[0].LeaseExpiresAt);
    }

    [Fact]
    public void Node_outputs_errors_and_tokens_survive_the_positional_form()
    {
        var token = Guid.NewGuid();
        using var output = JsonDocument.Parse("""{"total":42,"items":[1,2]}""");
        using var nullOutput = JsonDocument.Parse("null");
        var document = new ExecutionDocument
        {
            Nodes =
            [
                new NodeRun { Status = NodeStatus.Succeeded, Attempt = 2, RunToken = token, WorkerId = "host-1", Output = output.RootElement, PendingParents = 3, Losses = 1 },
                new NodeRun { Status = NodeStatus.Failed, Attempt = 1, Error = new NodeError("Boom", "it broke", ErrorClass.Permanent) },
                new NodeRun { Status = NodeStatus.Succeeded, Output = nullOutput.RootElement },
                new NodeRun(),
            ],
        };

        var read = JsonSerializer.Deserialize(JsonSerializer.Serialize(document, ExecutionDocumentContext.Default.ExecutionDocument), ExecutionDocumentContext.Default.ExecutionDocument)!;

        Assert.Equal(token, read.Nodes[0].RunToken);
        Assert.Equal("host-1", read.Nodes[0].WorkerId);
        Assert.Equal(2, read.Nodes[0].Attempt);
        Assert.Equal((3, 1), (read.Nodes[0].PendingParents, read.Nodes[0].Losses));
        Assert.Equal("""{"total":42,"items":[1,2]}""", read.Nodes[0].Output!.Value.GetRawText());
        Assert.Null(read.Nodes[0].Error);
        Assert.Equal(new NodeError("Boom", "it broke", ErrorClass.Permanent), read.Nodes[1].Error);
        Assert.Null(read.Nodes[1].Output);
        Assert.Equal(JsonValueKind.Null, read.Nodes[2].Output!.Value.ValueKind);
        Assert.Equal((NodeStatus.Pending, Guid.Empty, (string?)null, (JsonElement?)null), (read.Nodes[3].Status, read.Nodes[3].RunToken, read.Nodes[3].WorkerId, read.Nodes[3].Output));
    }

    [Fact]
    public void Documents_written_in_the_object_form_with_iso_timestamps_still_read()
    {
        const string json = """{"CreatedAt":"2026-11-22T21:05:07.1234567+00:00","Status":1,"Nodes":[{"Status":3,"Attempt":1,"RunToken":"8d4a3c8e-1f7b-4b7e-9d5e-2f0c6a1b9e10","StartedAt":"2026-11-22T21:05:08+00:00","EndedAt":"2026-11-22T23:05:09+02:00","Output":{"a":1},"PendingParents":2}]}""";

        var read = JsonSerializer.Deserialize(json, ExecutionDocumentContext.Default.ExecutionDocument)!;

        Assert.Equal(new DateTimeOffset(2026, 11, 22, 21, 5, 7, TimeSpan.Zero).AddTicks(1234567), read.CreatedAt);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 21, 5, 8, TimeSpan.Zero), read.Nodes[0].StartedAt);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 21, 5, 9, TimeSpan.Zero), read.Nodes[0].EndedAt);
        Assert.Equal((NodeStatus.Succeeded, 1, 2), (read.Nodes[0].Status, read.Nodes[0].Attempt, read.Nodes[0].PendingParents));
        Assert.Equal(Guid.Parse("8d4a3c8e-1f7b-4b7e-9d5e-2f0c6a1b9e10"), read.Nodes[0].RunToken);
        Assert.Equal("""{"a":1}""", read.Nodes[0].Output!.Value.GetRawText());
    }
}
