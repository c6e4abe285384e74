import openai
import pytest
import requests

from conftest import MODEL_ID


def test_list_models(client):
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert ids == [MODEL_ID]
    assert models.data[0].object == "model"
    assert models.data[0].created > 1_600_000_000


def test_retrieve_model(client):
    m = client.models.retrieve(MODEL_ID)
    assert m.id == MODEL_ID
    assert m.owned_by == "lantern"


def test_retrieve_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("gpt-nonexistent")
    assert e.value.body["code"] == "model_not_found"


def test_health(server):
    r = requests.get(server.base + "/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
