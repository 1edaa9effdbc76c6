using System.Text.Json;
using Xunit;

namespace Nova.Workflow.Tests.Model;

public sealed class WorkflowJsonTests
{
    private static WorkflowDefinition Sample() => new WorkflowBuilder("invoice")
        .Version(3)
        .OnFailure(FailureMode.CompleteBranches)
        .DefaultRetry(RetryPolicy.Default with { MaxAttempts = 4 })
        .Node("fetch", "http.fetch", n => n.Config(new { url = "https://example.invalid/x" }).TimeLimit(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10)))
        .Node("parse", "invoice.parse", n => n.DependsOn("fetch").Queue("cpu", 8).RateLimit(10, TimeSpan.FromMinutes(1)))
        .Node("big", "notify", n => n.DependsOn("parse", EdgeCondition.Path("$.total", ComparisonOperator.GreaterThan, 1000)).Trigger(TriggerRule.AllDone).Retry(RetryPolicy.None))
        .Build();

    [Fact]
    public void Save_then_load_round_trips_every_setting()
    {
        var json = WorkflowJson.Save(Sample());
        var loaded = WorkflowJson.Load(json);
        Assert.Equal(json, WorkflowJson.Save(loaded));
        Assert.Equal(3, loaded.Version);
        Assert.Equal(FailureMode.CompleteBranches, loaded.FailureMode);
        Assert.Equal(4, loaded.DefaultRetry.MaxAttempts);
        var parse = loaded.Nodes.Single(n => n.Id == "parse");
        Assert.Equal("cpu", parse.Queue);
        Assert.Equal(8, parse.Priority);
        Assert.Equal(new RateLimit(10, TimeSpan.FromMinutes(1)), parse.RateLimit);
        var fetch = loaded.Nodes.Single(n => n.Id == "fetch");
        Assert.Equal(TimeSpan.FromSeconds(10), fetch.HardTimeLimit);
        Assert.Equal("https://example.invalid/x", fetch.Config!.Value.GetProperty("url").GetString());
        var condition = Assert.IsType<JsonPathCondition>(loaded.Edges.Single(e => e.Target == "big").Condition);
        Assert.Equal("$.total", condition.PathText);
        Assert.Equal(TriggerRule.AllDone, loaded.Nodes.Single(n => n.Id == "big").TriggerRule);
        Assert.Equal(1, loaded.Nodes.Single(n => n.Id == "big").Retry!.MaxAttempts);
    }

    [Fact]
    public void A_csharp_condition_cannot_be_saved()
    {
        var definition = new WorkflowBuilder("c").Node("a", "h").Node("b", "h", n => n.DependsOn("a", o => true)).Build();
        var ex = Assert.Throws<NotSupportedException>(() => WorkflowJson.Save(definition));
        Assert.Contains("'a' → 'b'", ex.Message);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("""{ "name": "x", "nodes": [ { "id": "a" } ] }""")]
    [InlineData("""{ "nodes": [] }""")]
    [InlineData("""{ "name": "x", "nodes": [], "unknownField": 1 }""")]
    [InlineData("""{ "name": "x", "nodes": [ { "id": "a", "handler": "h" } ], "edges": [ { "source": "a", "target": "a", "condition": { "path": "total", "op": "Equal" } } ] }""")]
    public void Malformed_json_gives_a_typed_error(string json) =>
        Assert.Throws<InvalidPayloadException>(() => WorkflowJson.Load(json));

    [Theory]
    [InlineData("$.total", ComparisonOperator.GreaterThan, 100, true)]
    [InlineData("$.total", ComparisonOperator.LessThanOrEqual, 100, false)]
    [InlineData("$.lines[1].sku", ComparisonOperator.Equal, "B-2", true)]
    [InlineData("$.lines[5].sku", ComparisonOperator.Exists, null, false)]
    [InlineData("$.status", ComparisonOperator.NotEqual, "open", true)]
    [InlineData("$.missing", ComparisonOperator.NotExists, null, true)]
    [InlineData("$.missing", ComparisonOperator.GreaterThan, 1, false)]
    [InlineData("$.approved", ComparisonOperator.Equal, true, true)]
    public void Json_path_conditions_compare_values_in_the_output(string path, ComparisonOperator op, object? value, bool expected)
    {
        var output = JsonSerializer.SerializeToElement(new { total = 120.5, status = "paid", approved = true, lines = new[] { new { sku = "A-1" }, new { sku = "B-2" } } });
        Assert.Equal(expected, EdgeCondition.Path(path, op, value).Evaluate(output));
    }
}
