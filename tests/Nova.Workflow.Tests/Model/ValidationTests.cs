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
    public void Repeated_edge_is_reported_once_per_repeat()
    {
        var ex = Invalid(Of(["a", "b", "c"], ("a", "b"), ("a", "c"), ("b", "c"), ("a", "b"), ("a", "b")));
        var repeats = ex.Errors.Where(e => e.Code == ValidationErrorCode.DuplicateEdge).ToList();
        Assert.Equal(2, repeats.Count);
        Assert.All(repeats, e => Assert.Contains("'a' → 'b'", e.Message));
    }

    [Fact]
    public void Repeated_self_loop_is_a_self_loop_each_time_not_a_repeated_edge()
    {
        var ex = Invalid(Of(["a", "b"], ("a", "a"), ("a", "b"), ("a", "a")));
        Assert.Equal(2, ex.Errors.Count(e => e.Code == ValidationErrorCode.SelfLoop));
        Assert.DoesNotContain(ex.Errors, e => e.Code == ValidationErrorCode.DuplicateEdge);
    }

    /// <summary>
    /// The structural checks (repeated ids, unknown ends, self loops, repeated edges) read what indexing the graph found;
    /// they must say exactly what a direct check over the ids says, in the same order, for any definition.
    /// </summary>
    [Fact]
    public void Structural_errors_match_a_direct_check_of_the_ids()
    {
        var structural = new[] { ValidationErrorCode.DuplicateNodeId, ValidationErrorCode.UnknownEdgeNode, ValidationErrorCode.SelfLoop, ValidationErrorCode.DuplicateEdge };
        var random = new Random(7);
        var checkedWithErrors = 0;
        for (var round = 0; round < 2000; round++)
        {
            // Ids from a small pool, so repeats are common; edge ends also from ids no node has.
            var nodes = Enumerable.Range(0, random.Next(1, 8)).Select(_ => $"n{random.Next(6)}").ToArray();
            string End() => random.Next(6) == 0 ? $"x{random.Next(2)}" : nodes[random.Next(nodes.Length)];
            var edges = Enumerable.Range(0, random.Next(0, 10)).Select(_ => (End(), End())).ToArray();
            var definition = Of(nodes, edges);
            var expected = DirectStructuralCheck(definition);
            var actual = WorkflowValidator.Collect(definition, _ => true).Where(e => structural.Contains(e.Code)).ToList();
            Assert.Equal(expected, actual);
            checkedWithErrors += expected.Count > 0 ? 1 : 0;
        }

        Assert.True(checkedWithErrors > 500, $"only {checkedWithErrors} of the random definitions had structural errors");
    }

    private static List<WorkflowValidationError> DirectStructuralCheck(WorkflowDefinition definition)
    {
        var errors = new List<WorkflowValidationError>();
        var ids = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in definition.Nodes)
        {
            if (!ids.Add(node.Id))
            {
                errors.Add(new(ValidationErrorCode.DuplicateNodeId, $"Node id '{node.Id}' is used more than once; node ids must be unique."));
            }
        }

        var pairs = new HashSet<(string, string)>();
        foreach (var edge in definition.Edges)
        {
            if (!ids.Contains(edge.Source))
            {
                errors.Add(new(ValidationErrorCode.UnknownEdgeNode, $"Edge '{edge.Source}' → '{edge.Target}' starts at unknown node '{edge.Source}'."));
            }

            if (!ids.Contains(edge.Target))
            {
                errors.Add(new(ValidationErrorCode.UnknownEdgeNode, $"Edge '{edge.Source}' → '{edge.Target}' ends at unknown node '{edge.Target}'."));
            }

            if (edge.Source == edge.Target)
            {
                errors.Add(new(ValidationErrorCode.SelfLoop, $"Node '{edge.Source}' depends on itself; remove the edge '{edge.Source}' → '{edge.Target}'."));
            }
            else if (!pairs.Add((edge.Source, edge.Target)))
            {
                errors.Add(new(ValidationErrorCode.DuplicateEdge, $"Edge '{edge.Source}' → '{edge.Target}' is declared more than once."));
            }
        }

        return errors;
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
