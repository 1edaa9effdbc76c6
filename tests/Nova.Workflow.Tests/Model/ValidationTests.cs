using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace Nova.Workflow.Tests.Model;

public sealed class ValidationTests
{
    private static WorkflowValidationException Invalid(WorkflowDefinition definition, params string[] handlers) =>
        Assert.Throws<WorkflowValidationException>(() => WorkflowValidator.Validate(definition, h => handlers.Length == 0 || handlers.Contains(h)));

    private static WorkflowDefinition Of(string[] nodes, params (string, string)[] edges) =>
        new("wf", 1, nodes.Select(n => new NodeDefinition(n, "h")), edges.Select(e => new EdgeDefinition(e.Item1, e.Item2)));

    [Fact]
    public void Empty_workflow() =>
        Assert.Equal(ValidationErrorCode.EmptyWorkflow, Assert.Single(Invalid(Of([])).Errors).Code);

    [Fact]
    public void Duplicate_node_id()
    {
        var ex = Invalid(Of(["a", "a"]));
        Assert.Equal(ValidationErrorCode.DuplicateNodeId, Assert.Single(ex.Errors).Code);
        Assert.Contains("'a'", ex.Message);
    }

    [Fact]
    public void Edge_to_an_unknown_node()
    {
        var ex = Invalid(Of(["a"], ("a", "ghost"), ("phantom", "a")));
        Assert.Equal(2, ex.Errors.Count(e => e.Code == ValidationErrorCode.UnknownEdgeNode));
        Assert.Contains("ghost", ex.Message);
        Assert.Contains("phantom", ex.Message);
    }

    [Fact]
    public void Self_loop() =>
        Assert.Contains(Invalid(Of(["a", "b"], ("a", "a"))).Errors, e => e.Code == ValidationErrorCode.SelfLoop);

    [Fact]
    public void Cycle_names_its_path()
    {
        var ex = Invalid(Of(["start", "a", "b", "c"], ("start", "a"), ("a", "b"), ("b", "c"), ("c", "a")));
        var cycle = Assert.Single(ex.Errors, e => e.Code == ValidationErrorCode.Cycle);
        Assert.Contains("a → b → c → a", cycle.Message);
    }

    [Fact]
    public void Nodes_behind_a_cycle_are_unreachable()
    {
        var ex = Invalid(Of(["a", "b", "c", "d"], ("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")));
        var unreachable = Assert.Single(ex.Errors, e => e.Code == ValidationErrorCode.UnreachableNode);
        Assert.Contains("'d'", unreachable.Message);
    }

    [Fact]
    public void Unknown_handler()
    {
        var definition = new WorkflowBuilder("wf").Node("a", "known").Node("b", "missing").Build();
        var ex = Invalid(definition, "known");
        Assert.Contains("'missing'", Assert.Single(ex.Errors, e => e.Code == ValidationErrorCode.UnknownHandler).Message);
    }

    [Fact]
    public void Every_problem_is_collected_into_one_exception()
    {
        var definition = new WorkflowDefinition("wf", 1,
            [new NodeDefinition("a", "h"), new NodeDefinition("a", "h"), new NodeDefinition("b", "nope") { Priority = 12 }, new NodeDefinition("c", "h")],
            [new EdgeDefinition("b", "c"), new EdgeDefinition("c", "b"), new EdgeDefinition("c", "zzz")]);
        var codes = Invalid(definition, "h").Errors.Select(e => e.Code).ToHashSet();
        Assert.Superset(new HashSet<ValidationErrorCode> { ValidationErrorCode.DuplicateNodeId, ValidationErrorCode.UnknownHandler, ValidationErrorCode.InvalidSetting, ValidationErrorCode.Cycle, ValidationErrorCode.UnknownEdgeNode }, codes);
    }

    [Theory]
    [InlineData("bad id")]
    [InlineData("")]
    public void Settings_out_of_range_are_reported(string queue)
    {
        var definition = new WorkflowBuilder("wf")
            .Node("a", "h", n => n.Queue(queue.Length == 0 ? "q" : queue, 10).TimeLimit(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(1)).RateLimit(0, TimeSpan.FromSeconds(1)).Retry(RetryPolicy.Default with { MaxAttempts = 0 }))
            .Build();
        var messages = string.Join("\n", Invalid(definition).Errors.Select(e => e.Message));
        Assert.Contains("priority", messages);
        Assert.Contains("hard time limit", messages);
        Assert.Contains("rate limit", messages);
        Assert.Contains("MaxAttempts", messages);
    }

    [Fact]
    public void A_valid_definition_passes() =>
        WorkflowValidator.Validate(new WorkflowBuilder("ok").Node("a", "h").Node("b", "h", n => n.DependsOn("a")).Build(), _ => true);

    [Fact]
    public async Task An_invalid_definition_stops_the_host_from_starting_with_the_message()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddLogging();
        builder.Services.AddNovaWorkflows(nova => nova
            .AddHandler("h", (_, _) => ValueTask.FromResult<System.Text.Json.JsonElement?>(null))
            .AddWorkflow(Of(["a", "b"], ("a", "b"), ("b", "a"))));
        using var host = builder.Build();
        var ex = await Assert.ThrowsAsync<WorkflowValidationException>(() => host.StartAsync());
        Assert.Contains("a → b → a", ex.Message);
    }
}
