// The web API: starts workflows and streams their progress; runs no worker (the FastAPI side of the split).
//   Nova__Storage=Redis ConnectionStrings__Redis=127.0.0.1:6379 Sample__ApiKey=secret \
//     dotnet run --project samples/Nova.Workflow.Samples.Web -- --urls http://127.0.0.1:5080
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Nova.Workflow;
using Nova.Workflow.Samples;
using Nova.Workflow.Samples.Web;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddNovaWorkflows(nova => nova.UseConfiguredStorage(builder.Configuration).AddSampleWorkflows());
builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));

// Every endpoint requires the host-chosen policy; here an API key in the X-Api-Key header.
builder.Services.AddAuthentication(ApiKeyHandler.SchemeName).AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>(ApiKeyHandler.SchemeName, null);
builder.Services.AddAuthorizationBuilder().AddPolicy("workflows", p => p.RequireAuthenticatedUser());

var app = builder.Build();
app.UseAuthentication();
app.UseAuthorization();
var api = app.MapGroup("/").RequireAuthorization("workflows");

api.MapPost("/workflows/{name}", async (string name, HttpRequest request, IWorkflowClient client, CancellationToken ct) =>
{
    var input = request.ContentLength > 0 ? await JsonSerializer.DeserializeAsync<JsonElement>(request.Body, cancellationToken: ct) : default;
    var key = request.Headers["Idempotency-Key"].FirstOrDefault();
    try
    {
        var id = await client.StartAsync(name, input.ValueKind == JsonValueKind.Undefined ? null : input, new StartOptions { IdempotencyKey = key }, ct);
        return Results.Accepted($"/executions/{id}", new { id });
    }
    catch (WorkflowNotFoundException ex)
    {
        return Results.NotFound(new { error = ex.Message });
    }
    catch (InvalidPayloadException ex)
    {
        return Results.BadRequest(new { error = ex.Message });
    }
});

api.MapGet("/executions/{id:guid}", async (Guid id, IWorkflowClient client, CancellationToken ct) =>
{
    try
    {
        return Results.Ok(await client.GetAsync(id, ct));
    }
    catch (ExecutionNotFoundException ex)
    {
        return Results.NotFound(new { error = ex.Message });
    }
});

// Server-Sent Events until the execution ends.
api.MapGet("/executions/{id:guid}/events", async (Guid id, HttpContext http, IWorkflowClient client, CancellationToken ct) =>
{
    try
    {
        await client.GetAsync(id, ct);
    }
    catch (ExecutionNotFoundException)
    {
        http.Response.StatusCode = StatusCodes.Status404NotFound;
        return;
    }

    http.Response.ContentType = "text/event-stream";
    http.Response.Headers.CacheControl = "no-cache";
    await foreach (var e in client.WatchAsync(id, ct))
    {
        await http.Response.WriteAsync($"event: {e.Type}\ndata: {JsonSerializer.Serialize(e, JsonSerializerOptions.Web)}\n\n", ct);
        await http.Response.Body.FlushAsync(ct);
    }
});

api.MapPost("/executions/{id:guid}/cancel", async (Guid id, IWorkflowClient client, CancellationToken ct) =>
{
    await client.CancelAsync(id, ct);
    return Results.Accepted();
});

app.Run();
